@testable import Agents
import Foundation
import Logging
import Testing

private let flows = "default: [a]\n"
private let agentA = "kind: template\nprompt: hi\n"

@Test func theShippedAgentsLoadCleanly() throws {
    let catalog = try AgentCatalog.load(directory: shippedAgents, logger: Logger(label: "test"))
    #expect(catalog.flowNames == ["bmad", "default", "review"])
    let standard = try #require(catalog.flow(named: "default"))
    #expect(standard.agentIDs == ["analyst", "summarizer"])
    #expect(standard.requiredDocuments.isEmpty)
    #expect(standard.maxSteps == 100)
    let bmad = try #require(catalog.flow(named: "bmad"))
    #expect(bmad.agentIDs == ["bmad-analyst", "bmad-pm", "bmad-architect"])
    #expect(bmad.requiredDocuments == ["project-brief", "prd"])
    let review = try #require(catalog.flow(named: "review"))
    #expect(review.agentIDs == ["writer", "reviewer"])
    #expect(review.maxSteps == 20)
}

@Test func anAgentsIDDefaultsToItsFileNameAndMayBeSetExplicitly() throws {
    let folder = try AgentsFolder([
        "first.yaml": agentA, "second.yml": "id: other\nkind: mock\n", "flows.yaml": "default: [first, other]\n",
    ])
    defer { folder.remove() }
    let catalog = try folder.load()
    #expect(catalog.agentIDs == ["first", "other"])
    #expect(catalog.agent(id: "other")?.kind == .mock)
}

@Test func flowOrderIsBreadthFirstFromStartWithTransitionsAsWritten() throws {
    let folder = try AgentsFolder([
        "a.yaml": "kind: template\nrequires: [d1]\nprompt: '{{docs.d2}} {{docs.d1}}'\n",
        "b.yaml": "kind: template\nprompt: '{{docs.d3}}'\n",
        "c.yaml": "kind: template\nrequires: [d4, d2]\nprompt: x\n",
        "d.yaml": "kind: template\nprompt: '{{docs.d5}}'\n",
        "flows.yaml": """
        g:
          start: a
          transitions:
            c: {default: d}
            a: {x: c, y: b, z: end}
            b: {default: a}
        """,
    ])
    defer { folder.remove() }
    let flow = try #require(try folder.load().flow(named: "g"))
    #expect(flow.agentIDs == ["a", "c", "b", "d"])
    #expect(flow.requiredDocuments == ["d1", "d2", "d4", "d3", "d5"])
}

@Test func everyKindOfAgentProblemIsReportedWithItsFileAndLine() throws {
    let cases: [(String, String)] = [
        ("kind: template\nprompt: x\npromt: y\n", "a.yaml:3: unknown key 'promt'"),
        ("prompt: x\n", "a.yaml:1: missing required key 'kind' (template, llm or mock)"),
        ("kind: robot\nprompt: x\n", "a.yaml:1: kind 'robot' must be one of template, llm, mock"),
        ("kind: template\n", "a.yaml:1: missing required key 'prompt' (kind template)"),
        ("kind: template\nprompt: 42\n", "a.yaml:2: 'prompt' must be a string"),
        ("kind: template\nprompt: x\nmax_retries: 0\n", "a.yaml:3: 'max_retries' must be an integer of at least 1"),
        ("kind: template\nprompt: x\nmax_retries: two\n", "a.yaml:3: 'max_retries' must be an integer of at least 1"),
        ("kind: template\nprompt: x\nwait: -1\n", "a.yaml:3: 'wait' must be a number of seconds of at least 0"),
        ("kind: template\nprompt: x\ntimeout: 0\n", "a.yaml:3: 'timeout' must be a number of seconds above 0"),
        ("kind: template\nprompt: x\nrequires: brief\n", "a.yaml:3: 'requires' must be a list of strings"),
        ("kind: template\nprompt: x\nrequires: [../etc]\n",
         "a.yaml:3: document id '../etc' in 'requires' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        ("kind: template\nprompt: x\ndelay_ms: 5\n", "a.yaml:3: 'delay_ms' is only for kind mock, not template"),
        ("kind: mock\nmodel: gpt\n", "a.yaml:2: 'model' is only for kind llm, not mock"),
        ("kind: llm\nprompt: x\noutput: y\n", "a.yaml:3: 'output' is only for kind mock, not llm"),
        ("kind: mock\nfail_attempts: -1\n", "a.yaml:2: 'fail_attempts' must be an integer of at least 0"),
        ("kind: template\nprompt: '{{nope}}'\n", "a.yaml:2: prompt: unknown placeholder '{{nope}}'"),
        ("kind: template\nprompt: '{{docs.bad/id}}'\n", "a.yaml:2: prompt: unknown placeholder '{{docs.bad/id}}'"),
        ("kind: template\nprompt: 'x {{input'\n", "a.yaml:2: prompt: unclosed placeholder '{{input'"),
        ("kind: template\nprompt: '{{outputs.ghost}}'\n", "a.yaml:2: placeholder '{{outputs.ghost}}' names no agent"),
        ("kind: template\nprompt: x\nroutes: [{match: '(', action: go}]\n",
         "a.yaml:3: invalid regular expression '(' in 'match'"),
        ("kind: template\nprompt: x\nroutes: [{match: a, act: go}]\n", "a.yaml:3: route without 'action'"),
        ("kind: template\nprompt: x\nroutes: yes\n", "a.yaml:3: 'routes' must be a list of {match, action}"),
        ("id: Bad\nkind: mock\n", "a.yaml:1: id 'Bad' must match [a-z0-9][a-z0-9_-]*"),
        ("kind: template\nprompt: [x\n", "a.yaml:3: invalid YAML"),
        ("- a\n- b\n", "a.yaml:1: an agent file must be a mapping"),
        ("kind: mock\nkind: llm\n", "a.yaml:1: duplicate key 'kind'"),
    ]
    for (text, expected) in cases {
        let folder = try AgentsFolder(["a.yaml": text, "flows.yaml": flows])
        defer { folder.remove() }
        let problems = folder.problems()
        #expect(problems.contains { $0.hasPrefix(expected) }, "\(expected) not in \(problems)")
        // A broken agent file adds no noise about the flow that names it (the 'Bad' id really is another agent).
        if !text.hasPrefix("id:") { #expect(!problems.contains { $0.hasPrefix("flows.yaml") }, "\(problems)") }
    }
}

@Test func everyKindOfFlowProblemIsReported() throws {
    let cases: [(String, String)] = [
        ("default: [a, ghost]\n", "flows.yaml:1: flow 'default': agent 'ghost' is not a known agent"),
        ("default: [a, a]\n", "flows.yaml:1: flow 'default': agent 'a' appears twice"),
        ("default: []\n", "flows.yaml:1: flow 'default' lists no agents"),
        ("g:\n  start: ghost\n", "flows.yaml:2: flow 'g': start 'ghost' is not a known agent"),
        ("g:\n  transitions: {a: {default: end}}\n", "flows.yaml:2: flow 'g': missing required key 'start'"),
        ("g:\n  start: a\n  transitions: {a: {default: nowhere}}\n",
         "flows.yaml:3: flow 'g': transition to 'nowhere' is not a known agent"),
        ("g:\n  start: a\n  transitions: {zz: {default: a}}\n",
         "flows.yaml:3: flow 'g': transition from 'zz' is not a known agent"),
        ("g:\n  start: a\n  max_steps: 0\n", "flows.yaml:3: 'max_steps' must be an integer of at least 1"),
        ("g:\n  start: a\n  loop: true\n", "flows.yaml:3: flow 'g': unknown key 'loop'"),
        ("g: 42\n", "flows.yaml:1: flow 'g' must be a list of agents or a mapping with start and transitions"),
        ("bad name!: [a]\n", "flows.yaml:1: flow name 'bad name!'"),
    ]
    for (text, expected) in cases {
        let folder = try AgentsFolder(["a.yaml": agentA, "flows.yaml": text])
        defer { folder.remove() }
        let problems = folder.problems()
        #expect(problems.contains { $0.hasPrefix(expected) }, "\(expected) not in \(problems)")
    }
}

@Test func aMissingFlowsFileAndDuplicateIDsAreProblems() throws {
    let folder = try AgentsFolder(["a.yaml": agentA, "b.yaml": "id: a\nkind: mock\n", "end.yaml": agentA])
    defer { folder.remove() }
    let problems = folder.problems()
    #expect(problems.contains("b.yaml: duplicate agent id 'a' (also in a.yaml)"))
    #expect(problems.contains("end.yaml: agent id 'end' is reserved"))
    #expect(problems.contains("flows.yaml: missing: no flows are defined"))
}

@Test func aBrokenFolderReportsAllItsProblemsInOneRunEachNamingItsFile() throws {
    let folder = try AgentsFolder([
        "good.yaml": agentA,
        "typo.yaml": "kind: template\nprompt: '{{inptu}}'\ncolour: red\n",
        "wrongkind.yaml": "kind: template\nprompt: x\nmodel: gpt\n",
        "broken.yaml": "kind: [unclosed\n",
        "route.yaml": "kind: mock\nroutes: [{match: '[', action: a}]\n",
        "Upper Case.yaml": agentA,
        "flows.yaml": "default: [good, ghost]\nloop:\n  start: good\n  transitions: {good: {again: nowhere}}\n",
    ])
    defer { folder.remove() }
    let problems = folder.problems()
    let files = Set(problems.map { String($0.prefix { $0 != ":" }) })
    #expect(files == ["typo.yaml", "wrongkind.yaml", "broken.yaml", "route.yaml", "Upper Case.yaml", "flows.yaml"])
    #expect(problems.count == 8, "\(problems)")
    #expect(problems.contains("typo.yaml:2: prompt: unknown placeholder '{{inptu}}'"))
    #expect(problems.contains("typo.yaml:3: unknown key 'colour'"))
}

@Test func templatesRenderEveryPlaceholder() throws {
    let template = try PromptTemplate.parse("{{input}}|{{ story_id }}|{{docs.brief}}|{{outputs.a}}|{{memory.last_output}}|")
    let input = FlowInput(input: "in", storyID: "s1", documents: ["brief": "B"])
    #expect(try template.render(input: input, outputs: ["a": "A"], lastOutput: "L") == "in|s1|B|A|L|")
    #expect(try template.render(input: input, outputs: ["a": "A"], lastOutput: nil) == "in|s1|B|A||")
    #expect(template.documentIDs == ["brief"])
    #expect(template.outputAgents == ["a"])
}

@Test func aProblemReadsFileFirstWithTheLineWhenKnown() {
    #expect(CatalogProblem(file: "agents/a.yaml", line: 3, message: "unknown key 'x'").description
        == "agents/a.yaml:3: unknown key 'x'")
    #expect(CatalogProblem(file: "agents/flows.yaml", message: "missing").description == "agents/flows.yaml: missing")
}
