import Hummingbird
import NIOCore

/// Hummingbird's request context plus the connection, whose state tells a job its client is gone.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
