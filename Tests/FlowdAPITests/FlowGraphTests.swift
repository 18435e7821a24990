import FlowdJSON
import FlowdTesting
import Foundation
import Stores
import Testing

/// `GET /flows` gives each flow's start and edges, in the order `flows.yaml` writes them, so a
/// client (the console) can draw it.
@Suite("Flow graphs in GET /flows")
struct FlowGraphTests {
    /// Transitions written in an order that is not the flow order: sources, and each source's
    /// actions, come out as written, not breadth-first.
    static let agents = TestAgents(
        agents: [
            "analyst": "kind: template\nprompt: \"a {{input}}\"\n",
            "summarizer": "kind: template\nprompt: \"s {{input}}\"\n",
            "writer": "kind: template\nprompt: \"w {{input}}\"\n",
            "reviewer": "kind: template\nprompt: \"r {{input}}\"\nroutes:\n  - {match: \"^ok\", action: approve}\n",
            "editor": "kind: template\nprompt: \"e {{input}}\"\n",
            "orphan": "kind: template\nprompt: \"o {{input}}\"\n",
        ],
        flows: """
            default: [analyst, summarizer]
            single: [analyst]
            review:
              start: writer
              transitions:
                reviewer: {approve: end, revise: writer, polish: editor}
                orphan: {default: writer}
                writer: {default: reviewer}
                editor: {default: end}
              max_steps: 9
            """)

    static func flows(_ flowd: TestFlowd) async throws -> [String: JSONValue] {
        let response = try await flowd.client.get("/flows")
        #expect(response.status == 200)
        let list = response.json["flows"]?.elements ?? []
        return Dictionary(uniqueKeysWithValues: list.map { ($0["name"]?.stringValue ?? "", $0) })
    }

    static func edges(_ flow: JSONValue?) -> [[String]] {
        (flow?["edges"]?.elements ?? []).map { [$0["from"]?.stringValue ?? "?", $0["action"]?.stringValue ?? "?", $0["to"]?.stringValue ?? "?"] }
    }

    @Test func aSequenceStartsAtItsFirstAgentAndEachLeadsToTheNextOnDefault() async throws {
        try await withFlowd(Self.agents, mode: .router) { flowd in
            let flows = try await Self.flows(flowd)
            #expect(flows["default"]?["start"]?.stringValue == "analyst")
            #expect(Self.edges(flows["default"]) == [["analyst", "default", "summarizer"]])
            // One agent: a start and no edge (nothing after the last agent).
            #expect(flows["single"]?["start"]?.stringValue == "analyst")
            #expect((flows["single"]?["edges"]?.arrayValue)?.isEmpty == true)
        }
    }

    @Test func aGraphsEdgesAreItsTransitionsAsWrittenWithItsLoopAndEnd() async throws {
        try await withFlowd(Self.agents, mode: .router) { flowd in
            let review = try await Self.flows(flowd)["review"]
            #expect(review?["start"]?.stringValue == "writer")
            #expect(review?["agents"]?.strings == ["writer", "reviewer", "editor"])
            // The orphan's transition is written but the flow never reaches it: not an edge.
            #expect(Self.edges(review) == [
                ["reviewer", "approve", "end"], ["reviewer", "revise", "writer"], ["reviewer", "polish", "editor"],
                ["writer", "default", "reviewer"], ["editor", "default", "end"],
            ])
        }
    }

    @Test func aLoopBackToAnEarlierAgentIsAnEdgeLikeAnyOther() async throws {
        try await withFlowd(Fixtures.basic, mode: .router) { flowd in
            let flows = try await Self.flows(flowd)
            #expect(Self.edges(flows["review"]) == [
                ["writer", "default", "reviewer"], ["reviewer", "revise", "writer"], ["reviewer", "approve", "end"],
            ])
            #expect(Self.edges(flows["failing"]) == [["analyst", "default", "boom"], ["boom", "default", "summarizer"]])
        }
    }
}
