/// Errors raised by CPU kernels for bad input data (as opposed to programming errors, which
/// are preconditions).
public enum CPUKernelError: Error, Equatable, CustomStringConvertible {
    /// `tokenIds[index]` is not a row of the embedding table.
    case tokenOutOfRange(id: Int, index: Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case let .tokenOutOfRange(id, index, vocabularySize):
            return "token id \(id) at index \(index) is outside the vocabulary (valid ids are 0..<\(vocabularySize))"
        }
    }
}
