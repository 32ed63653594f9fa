import Foundation

// `localizedDescription` on Linux ignores CustomStringConvertible; route it to `description`
// so callers printing `error.localizedDescription` still see the tensor/key/offset.
extension GGUFError: LocalizedError { public var errorDescription: String? { description } }
extension ModelError: LocalizedError { public var errorDescription: String? { description } }
extension SafetensorsError: LocalizedError { public var errorDescription: String? { description } }
extension MappedFileError: LocalizedError { public var errorDescription: String? { description } }
