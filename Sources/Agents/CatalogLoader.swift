import FlowEngine
import Foundation
import Logging
import Yams

typealias YAMLNode = Yams.Node

/// Reads an agents folder and collects every problem instead of stopping at the first.
struct CatalogLoader {
    static let commonKeys: Set<String> = [
        "id", "kind", "description", "requires", "prompt", "max_retries", "wait", "timeout", "routes",
    ]
    static let kindKeys: [String: AgentDefinition.Kind] = [
        "delay_ms": .mock, "fail": .mock, "fail_attempts": .mock, "output": .mock,
        "model": .llm, "system": .llm,
    ]
    static let defaultMaxSteps = 100

    let directory: URL
    let logger: Logger
    var problems: [CatalogProblem] = []

    init(directory: URL, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    mutating func load() -> AgentCatalog {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            problems.append(CatalogProblem(file: directory.relativePath, message: "cannot read the agents folder"))
            return AgentCatalog(agents: [:], flows: [:])
        }
        let yamlFiles = names.filter { name in
            !name.hasPrefix(".") && (name.hasSuffix(".yaml") || name.hasSuffix(".yml"))
                && !isDirectory(directory.appendingPathComponent(name))
        }.sorted()
        let flowFiles = yamlFiles.filter { $0 == "flows.yaml" || $0 == "flows.yml" }

        var agents: [String: AgentDefinition] = [:]
        var fileByID: [String: String] = [:]
        var outputReferences: [(file: String, line: Int?, agent: String)] = []
        for name in yamlFiles where !flowFiles.contains(name) {
            let file = path(name)
            let stem = String(name[..<name.lastIndex(of: ".")!])
            let before = problems.count
            guard let parsed = parseAgent(file: file, stem: stem) else {
                // Unreadable: its problem is reported; count its likely id as known so flows naming it add no noise.
                if Identifiers.isAgentID(stem), fileByID[stem] == nil { fileByID[stem] = file }
                continue
            }
            if let other = fileByID[parsed.id] {
                problems.append(CatalogProblem(file: file, message: "duplicate agent id '\(parsed.id)' (also in \(other))"))
                continue
            }
            fileByID[parsed.id] = file
            outputReferences += parsed.outputs.map { (file, parsed.promptLine, $0) }
            if problems.count == before, let definition = parsed.definition {
                agents[definition.id] = definition
            }
        }
        for reference in outputReferences where fileByID[reference.agent] == nil {
            problems.append(CatalogProblem(
                file: reference.file, line: reference.line,
                message: "placeholder '{{outputs.\(reference.agent)}}' names no agent"))
        }

        var flows: [String: FlowDefinition] = [:]
        switch flowFiles.count {
        case 0:
            problems.append(CatalogProblem(file: path("flows.yaml"), message: "missing: no flows are defined"))
        case 1:
            flows = parseFlows(file: path(flowFiles[0]), knownAgents: Set(fileByID.keys), agents: agents)
        default:
            problems.append(CatalogProblem(file: path("flows.yml"), message: "both flows.yaml and flows.yml exist; keep one"))
        }
        return AgentCatalog(agents: agents, flows: flows)
    }

    private func path(_ name: String) -> String {
        directory.appendingPathComponent(name).relativePath
    }

    private func isDirectory(_ url: URL) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) && directory.boolValue
    }

    // MARK: YAML

    private mutating func compose(file: String) -> YAMLNode? {
        let url = URL(fileURLWithPath: file)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            problems.append(CatalogProblem(file: file, message: "cannot read the file"))
            return nil
        }
        guard let text = String(data: data, encoding: .utf8) else {
            problems.append(CatalogProblem(file: file, message: "not valid UTF-8"))
            return nil
        }
        do {
            guard let node = try Yams.compose(yaml: text) else {
                problems.append(CatalogProblem(file: file, message: "empty file"))
                return nil
            }
            return node
        } catch {
            let (line, message) = Self.describe(yamlError: error)
            problems.append(CatalogProblem(file: file, line: line, message: message))
            return nil
        }
    }

    static func describe(yamlError error: any Error) -> (Int?, String) {
        guard let error = error as? YamlError else { return (nil, "invalid YAML: \(error)") }
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            return (mark.line, "invalid YAML: \(problem)" + (context.map { " (\($0.text))" } ?? ""))
        case let .duplicatedKeysInMapping(duplicates, context):
            return (context.mark.line, "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", "))")
        default:
            return (nil, "invalid YAML: \(error)")
        }
    }

    private mutating func problem(_ file: String, _ node: YAMLNode?, _ message: String) {
        problems.append(CatalogProblem(file: file, line: node?.mark?.line, message: message))
    }

    /// The mapping's entries with string keys, in order; other keys are problems.
    private mutating func entries(_ file: String, _ node: YAMLNode, what: String) -> [(key: String, keyNode: YAMLNode, value: YAMLNode)]? {
        guard case let .mapping(mapping) = node else {
            problem(file, node, "\(what) must be a mapping")
            return nil
        }
        var result: [(String, YAMLNode, YAMLNode)] = []
        for (key, value) in mapping {
            guard let name = Self.string(key) else {
                problem(file, key, "keys of \(what) must be strings")
                continue
            }
            result.append((name, key, value))
        }
        return result
    }

    static func string(_ node: YAMLNode) -> String? {
        guard case let .scalar(scalar) = node, node.tag.rawValue == Tag.Name.str.rawValue else { return nil }
        return scalar.string
    }

    private mutating func string(_ file: String, _ key: String, _ node: YAMLNode) -> String? {
        guard let value = Self.string(node) else {
            problem(file, node, "'\(key)' must be a string")
            return nil
        }
        return value
    }

    private mutating func integer(_ file: String, _ key: String, _ node: YAMLNode, minimum: Int) -> Int? {
        guard node.tag.rawValue == Tag.Name.int.rawValue, let value = node.int, value >= minimum else {
            problem(file, node, "'\(key)' must be an integer of at least \(minimum)")
            return nil
        }
        return value
    }

    private mutating func seconds(_ file: String, _ key: String, _ node: YAMLNode, positive: Bool) -> Double? {
        guard node.tag.rawValue == Tag.Name.int.rawValue || node.tag.rawValue == Tag.Name.float.rawValue, let value = node.float, value.isFinite,
              positive ? value > 0 : value >= 0
        else {
            problem(file, node, "'\(key)' must be a number of seconds \(positive ? "above 0" : "of at least 0")")
            return nil
        }
        return value
    }

    private mutating func strings(_ file: String, _ key: String, _ node: YAMLNode) -> [String]? {
        guard case let .sequence(sequence) = node else {
            problem(file, node, "'\(key)' must be a list of strings")
            return nil
        }
        var result: [String] = []
        for item in sequence {
            guard let value = Self.string(item) else {
                problem(file, item, "'\(key)' must be a list of strings")
                return nil
            }
            result.append(value)
        }
        return result
    }

    // MARK: Agents

    struct ParsedAgent {
        var id: String
        var definition: AgentDefinition?
        var outputs: [String]
        var promptLine: Int?
    }

    private mutating func parseAgent(file: String, stem: String) -> ParsedAgent? {
        guard let root = compose(file: file), let fields = entries(file, root, what: "an agent file") else { return nil }
        var values: [String: YAMLNode] = [:]
        for (key, keyNode, value) in fields {
            if Self.commonKeys.contains(key) || Self.kindKeys[key] != nil {
                values[key] = value
            } else {
                problem(file, keyNode, "unknown key '\(key)'")
            }
        }

        var id = stem
        if let node = values["id"] {
            id = string(file, "id", node) ?? stem
            if !Identifiers.isAgentID(id) {
                problem(file, node, "id '\(id)' must match [a-z0-9][a-z0-9_-]*")
            }
        } else if !Identifiers.isAgentID(stem) {
            problem(file, nil, "file name '\(stem)' is not a valid agent id ([a-z0-9][a-z0-9_-]*); set 'id'")
        }
        if id == "end" { problem(file, values["id"], "agent id 'end' is reserved") }

        var kind: AgentDefinition.Kind?
        if let node = values["kind"] {
            if let name = string(file, "kind", node) {
                kind = AgentDefinition.Kind(rawValue: name)
                if kind == nil {
                    problem(file, node, "kind '\(name)' must be one of template, llm, mock")
                }
            }
        } else {
            problem(file, root, "missing required key 'kind' (template, llm or mock)")
        }
        if let kind {
            for (key, owner) in Self.kindKeys.sorted(by: { $0.key < $1.key }) where owner != kind {
                if let node = values[key] {
                    problem(file, node, "'\(key)' is only for kind \(owner.rawValue), not \(kind.rawValue)")
                }
            }
        }

        var definition = AgentDefinition(id: id, kind: kind ?? .template, file: file, requires: [])
        if let node = values["description"] { definition.description = string(file, "description", node) }
        if let node = values["requires"], let ids = strings(file, "requires", node) {
            for document in ids where !Identifiers.isDocumentID(document) {
                problem(file, node, "document id '\(document)' in 'requires' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
            }
            definition.requires = unique(ids)
        }
        var outputs: [String] = []
        if let node = values["prompt"], let source = string(file, "prompt", node) {
            do {
                let template = try PromptTemplate.parse(source)
                definition.prompt = template
                outputs = template.outputAgents
            } catch {
                for message in error.messages { problem(file, node, "prompt: \(message)") }
            }
        } else if values["prompt"] == nil, let kind, kind != .mock {
            problem(file, root, "missing required key 'prompt' (kind \(kind.rawValue))")
        }
        if let node = values["max_retries"], let value = integer(file, "max_retries", node, minimum: 1) {
            definition.maxRetries = value
        }
        if let node = values["wait"], let value = seconds(file, "wait", node, positive: false) { definition.wait = value }
        if let node = values["timeout"], let value = seconds(file, "timeout", node, positive: true) {
            definition.timeout = value
        }
        if let node = values["routes"] { definition.routes = parseRoutes(file, node) }
        if kind == .mock {
            if let node = values["delay_ms"], let value = integer(file, "delay_ms", node, minimum: 0) {
                definition.delayMilliseconds = value
            }
            if let node = values["fail"] { definition.fail = string(file, "fail", node) }
            if let node = values["fail_attempts"], let value = integer(file, "fail_attempts", node, minimum: 0) {
                definition.failAttempts = value
            }
            if let node = values["output"] { definition.output = string(file, "output", node) }
        }
        if kind == .llm {
            if let node = values["model"] { definition.model = string(file, "model", node) }
            if let node = values["system"] { definition.system = string(file, "system", node) }
        }
        return ParsedAgent(
            id: id, definition: kind == nil ? nil : definition, outputs: outputs,
            promptLine: values["prompt"]?.mark?.line)
    }

    private mutating func parseRoutes(_ file: String, _ node: YAMLNode) -> [Route] {
        guard case let .sequence(sequence) = node else {
            problem(file, node, "'routes' must be a list of {match, action}")
            return []
        }
        var routes: [Route] = []
        for item in sequence {
            guard let fields = entries(file, item, what: "a route") else { continue }
            var match: String?, action: String?
            for (key, keyNode, value) in fields {
                switch key {
                case "match": match = string(file, "match", value)
                case "action":
                    action = string(file, "action", value)
                    if action?.isEmpty == true {
                        problem(file, value, "route 'action' must not be empty")
                        action = nil
                    }
                default: problem(file, keyNode, "unknown key '\(key)' in a route (match, action)")
                }
            }
            if !fields.contains(where: { $0.key == "match" }) { problem(file, item, "route without 'match'") }
            if !fields.contains(where: { $0.key == "action" }) { problem(file, item, "route without 'action'") }
            guard let match, let action else { continue }
            do {
                routes.append(try Route(match: match, action: action))
            } catch {
                problem(file, item, "invalid regular expression '\(match)' in 'match'")
            }
        }
        return routes
    }

    // MARK: Flows

    private mutating func parseFlows(
        file: String, knownAgents: Set<String>, agents: [String: AgentDefinition]
    ) -> [String: FlowDefinition] {
        guard let root = compose(file: file), let entries = entries(file, root, what: "flows.yaml") else { return [:] }
        var flows: [String: FlowDefinition] = [:]
        for (name, nameNode, value) in entries {
            let before = problems.count
            if !Identifiers.isDocumentID(name) {
                problem(file, nameNode, "flow name '\(name)' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
            }
            func checkAgent(_ id: String, _ node: YAMLNode, role: String) -> Bool {
                if knownAgents.contains(id) { return true }
                problem(file, node, "flow '\(name)': \(role) '\(id)' is not a known agent")
                return false
            }
            var start = ""
            var transitions: [String: [(action: String, target: String?)]] = [:]
            var sourceOrder: [String] = []  // transitions' sources in the order written
            var maxSteps = Self.defaultMaxSteps
            switch value {
            case let .sequence(sequence):
                var ids: [String] = []
                for item in sequence {
                    guard let id = Self.string(item) else {
                        problem(file, item, "flow '\(name)': a sequence lists agent ids (strings)")
                        continue
                    }
                    if ids.contains(id) {
                        problem(file, item, "flow '\(name)': agent '\(id)' appears twice; use the graph form for loops")
                    }
                    _ = checkAgent(id, item, role: "agent")
                    ids.append(id)
                }
                if ids.isEmpty { problem(file, value, "flow '\(name)' lists no agents") }
                start = ids.first ?? ""
                for (from, to) in zip(ids, ids.dropFirst()) where transitions[from] == nil {
                    transitions[from] = [("default", to)]
                    sourceOrder.append(from)
                }
                maxSteps = max(Self.defaultMaxSteps, ids.count)
            case .mapping:
                guard let fields = self.entries(file, value, what: "flow '\(name)'") else { continue }
                for (key, keyNode, field) in fields {
                    switch key {
                    case "start":
                        if let id = string(file, "start", field) {
                            start = id
                            _ = checkAgent(id, field, role: "start")
                        }
                    case "max_steps":
                        maxSteps = integer(file, "max_steps", field, minimum: 1) ?? maxSteps
                    case "transitions":
                        guard let sources = self.entries(file, field, what: "'transitions' of flow '\(name)'") else { continue }
                        for (source, sourceNode, actions) in sources {
                            _ = checkAgent(source, sourceNode, role: "transition from")
                            guard let pairs = self.entries(file, actions, what: "transitions of '\(source)'") else { continue }
                            var list: [(action: String, target: String?)] = []
                            for (action, _, targetNode) in pairs {
                                guard let target = string(file, "\(source).\(action)", targetNode) else { continue }
                                if target == "end" {
                                    list.append((action, nil))
                                } else if checkAgent(target, targetNode, role: "transition to") {
                                    list.append((action, target))
                                }
                            }
                            if transitions[source] == nil { sourceOrder.append(source) }
                            transitions[source] = list
                        }
                    default:
                        problem(file, keyNode, "flow '\(name)': unknown key '\(key)' (start, transitions, max_steps)")
                    }
                }
                if !fields.contains(where: { $0.key == "start" }) {
                    problem(file, value, "flow '\(name)': missing required key 'start'")
                }
            default:
                problem(file, value, "flow '\(name)' must be a list of agents or a mapping with start and transitions")
            }
            guard problems.count == before else { continue }
            // An agent with its own problems is reported in its file; the flow is left out.
            let flow = Self.makeFlow(name: name, start: start, transitions: transitions, sources: sourceOrder,
                                     maxSteps: maxSteps, agents: agents, logger: logger)
            if let flow { flows[name] = flow }
        }
        return flows
    }

    /// Walks the graph breadth-first from `start` and builds the engine flow; nil when an agent is invalid.
    /// `sources` are the transitions' sources in the order written (the order of `edges`); nil
    /// takes them in flow order.
    static func makeFlow(
        name: String, start: String, transitions: [String: [(action: String, target: String?)]],
        sources: [String]? = nil, maxSteps: Int, agents: [String: AgentDefinition], logger: Logger
    ) -> FlowDefinition? {
        var order = [start]
        var seen: Set<String> = [start]
        var index = 0
        while index < order.count {
            for case let (_, target?) in transitions[order[index]] ?? [] where seen.insert(target).inserted {
                order.append(target)
            }
            index += 1
        }
        guard order.allSatisfy({ agents[$0] != nil }) else { return nil }
        var graph = Flow<RunState>(name: name, maxSteps: maxSteps, logger: logger)
        for id in order {
            graph.add(id, AgentNode(definition: agents[id]!))
        }
        for id in order {
            for (action, target) in transitions[id] ?? [] {
                if let target { graph.connect(id, on: action, to: target) } else { graph.end(id, on: action) }
            }
        }
        let edges = (sources ?? order).filter(seen.contains).flatMap { from in
            (transitions[from] ?? []).map { FlowEdge(from: from, action: $0.action, to: $0.target) }
        }
        return FlowDefinition(
            name: name, agentIDs: order,
            requiredDocuments: unique(order.flatMap { agents[$0]!.requiredDocuments }),
            maxSteps: maxSteps, start: start, transitions: transitions, edges: edges, graph: graph)
    }
}
