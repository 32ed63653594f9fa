import VulkanCompute
import CBLAS
public func smoke() -> Int32 { var x: Float = 2; var y: Float = 3; cblas_saxpy(1, 1, &x, 1, &y, 1); return smokeCheck() + Int32(y) }
