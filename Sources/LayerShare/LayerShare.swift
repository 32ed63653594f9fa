@_exported import ModelFormats
@_exported import VulkanCompute
