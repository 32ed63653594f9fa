/// The package version that `layershare --version` prints.
public enum LayerShareVersion {
    public static let string = "0.1.0"
}
