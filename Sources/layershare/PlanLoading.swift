import Foundation
import LayerShare

/// Layer modes of a sharing-plan file, validated against the model.
func loadPlanModes(path: String, model: LoadedModel) throws -> [LayerMode] {
    try SharingPlan.load(path: path, model: model).layerModes(for: model.hyper)
}
