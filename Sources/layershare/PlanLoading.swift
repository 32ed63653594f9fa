import Foundation
import LayerShare

/// Layer modes of a sharing-plan file, validated against the model.
func loadPlanModes(path: String, model: LoadedModel) throws -> [LayerMode] {
    throw ModelLoadError("sharing plans are not supported yet (\(path))")
}
