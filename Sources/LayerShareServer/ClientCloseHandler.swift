import NIOCore

/// Closes a connection once the client has closed its side. Hummingbird allows half-closed
/// connections, so a client that went away while its request waited or ran left the channel active
/// and nothing noticed; closed, it reads as inactive, which a job checks before it starts and at
/// every token. (A client that half-closes and still waits for its answer loses it: none of the
/// OpenAI clients does that.)
final class ClientCloseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }
}
