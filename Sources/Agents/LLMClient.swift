import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One chat-completions call of an llm agent, over the run's shared, pooled `HTTPClient`.
///
/// Messages: the agent's `system` persona, its earlier turns of the story, then
/// the rendered prompt as the user message. Every provider problem becomes an
/// `AgentFailure` that says what the provider answered.
struct LLMClient: Sendable {
    let definition: AgentDefinition
    let run: RunState

    private struct Request: Encodable {
        var model: String
        var messages: [ChatMessage]
    }

    private struct Response: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable { var content: String? }
            var message: Message
        }
        var choices: [Choice]
    }

    static let maxResponseBytes = 16 * 1024 * 1024

    func complete(prompt: String) async throws -> String {
        let agent = definition.id
        func failure(_ message: String) -> AgentFailure { AgentFailure(agent: agent, message: message) }
        guard let base = run.llm.baseURL, !base.isEmpty else {
            throw failure("no LLM endpoint configured (set FLOWD_LLM_BASE_URL)")
        }
        guard let model = definition.model ?? run.llm.defaultModel else {
            throw failure("no model: set 'model' on the agent or FLOWD_LLM_MODEL")
        }
        var messages: [ChatMessage] = []
        if let system = definition.system { messages.append(ChatMessage(role: "system", content: system)) }
        messages += run.input.memory[agent]?.history ?? []
        messages.append(ChatMessage(role: "user", content: prompt))

        let url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/chat/completions"
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        if let key = run.llm.apiKey, !key.isEmpty {
            request.headers.add(name: "Authorization", value: "Bearer \(key)")
        }
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(Request(model: model, messages: messages))))

        let status: UInt
        let body: ByteBuffer
        do {
            let response = try await run.httpClient.execute(request, timeout: .seconds(Int64(definition.timeout.rounded(.up))))
            status = response.status.code
            body = try await response.body.collect(upTo: Self.maxResponseBytes)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw failure("LLM request to \(url) failed: \(error)")
        }
        let text = String(buffer: body)
        guard (200..<300).contains(status) else {
            throw failure("LLM provider answered \(status): \(Self.excerpt(text))")
        }
        let decoded: Response
        do {
            decoded = try JSONDecoder().decode(Response.self, from: Data(text.utf8))
        } catch {
            throw failure("LLM provider answered \(status) with a body that is not a chat completion: \(Self.excerpt(text))")
        }
        guard let content = decoded.choices.first?.message.content else {
            throw failure("LLM provider answered \(status) without choices: \(Self.excerpt(text))")
        }
        return content
    }

    static func excerpt(_ text: String, limit: Int = 200) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }
}
