import ArgumentParser
import LayerShare

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List Vulkan devices with the limits LayerShare reads (memory heaps, subgroup size, buffer ranges, timestamps)."
    )

    @Option(help: "Mark the device that would be chosen by this index or name fragment (default: LAYERSHARE_DEVICE, else the most capable).")
    var device: String?

    func run() throws {
        let instance = try VulkanInstance(validation: false)
        if instance.devices.isEmpty { throw VulkanError.noDevice("the Vulkan loader reports 0 physical devices") }
        let chosen = try instance.selectDevice(device)
        for info in instance.devices {
            print(info.summary + (info.index == chosen.index ? "\n    (selected)" : ""))
        }
    }
}
