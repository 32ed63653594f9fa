import CVulkan
import CGlslang
public func smokeCheck() -> Int32 {
    var count: UInt32 = 0
    vkEnumerateInstanceVersion(&count)
    let r = glslang_initialize_process()
    return Int32(count) + r
}
