/// One transition of a flow: after `from` returns `action`, the flow goes on with `to`
/// (`nil`: the flow ends, written `end`).
public struct FlowEdge: Sendable, Equatable {
    public var from: String
    public var action: String
    public var to: String?

    public init(from: String, action: String, to: String?) {
        self.from = from
        self.action = action
        self.to = to
    }
}
