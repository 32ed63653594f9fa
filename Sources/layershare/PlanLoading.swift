import Foundation
import LayerShare

/// Layer specs of a sharing-plan file, validated against the model.
func loadPlanSpecs(path: String, model: LoadedModel) throws -> [LayerSpec] {
    try SharingPlan.load(path: path, model: model).layerSpecs(for: model.hyper)
}
