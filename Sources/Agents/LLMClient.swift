import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One chat-completions call of an llm agent, over the run's shared, pooled `HTTPClient`.
///
/// Messages: the agent's `system` persona, its earlier turns of the story, then
/// the rendered prompt as the user message. The provider is asked to stream
/// (`"stream": true`, usage in the last chunk); each piece of content goes to the run's
/// observer as it is read (`RunState.token`), and the usage the provider reports to
/// `RunState.usage`. A provider that answers plain JSON gives one piece, the whole output.
/// Every provider problem becomes an `AgentFailure` that says what the provider answered.
struct LLMClient: Sendable {
    let definition: AgentDefinition
    let run: RunState

    private struct Request: Encodable {
        struct StreamOptions: Encodable {
            var include_usage = true
        }
        var model: String
        var messages: [ChatMessage]
        var stream = true
        var stream_options = StreamOptions()
    }

    /// The `usage` member of a completion or of a streamed chunk.
    private struct Usage: Decodable {
        var prompt_tokens: Int?
        var completion_tokens: Int?

        var tokens: TokenUsage { TokenUsage(promptTokens: prompt_tokens ?? 0, completionTokens: completion_tokens ?? 0) }
    }

    private struct Response: Decodable {
        struct Choice: Decodable {
            struct Message: Decodable { var content: String? }
            var message: Message
        }
        var choices: [Choice]
        var usage: Usage?
    }

    /// One `data:` payload of a streamed completion.
    private struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable { var content: String? }
            var delta: Delta?
        }
        var choices: [Choice]?
        var usage: Usage?
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
        request.headers.add(name: "Accept", value: "text/event-stream, application/json")
        if let key = run.llm.apiKey, !key.isEmpty {
            request.headers.add(name: "Authorization", value: "Bearer \(key)")
        }
        request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(Request(model: model, messages: messages))))

        do {
            let response = try await run.httpClient.execute(request, timeout: .seconds(Int64(definition.timeout.rounded(.up))))
            let status = response.status.code
            let streamed = response.headers.first(name: "Content-Type")?.lowercased().hasPrefix("text/event-stream") ?? false
            if (200..<300).contains(status) && streamed {
                return try await read(stream: response.body, url: url)
            }
            let text = String(buffer: try await response.body.collect(upTo: Self.maxResponseBytes))
            guard (200..<300).contains(status) else {
                throw failure("LLM provider answered \(status): \(Self.excerpt(text))")
            }
            let decoded: Response
            do {
                decoded = try JSONDecoder().decode(Response.self, from: Data(text.utf8))
            } catch {
                throw failure("LLM provider answered \(status) with a body that is not a chat completion: \(Self.excerpt(text))")
            }
            if let usage = decoded.usage { run.usage(agent, usage.tokens) }
            guard let content = decoded.choices.first?.message.content else {
                throw failure("LLM provider answered \(status) without choices: \(Self.excerpt(text))")
            }
            try Task.checkCancellation()
            run.token(agent, content)
            return content
        } catch let error as AgentFailure {
            throw error
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw failure("LLM request to \(url) failed: \(error)")
        }
    }

    /// Reads a streamed completion as it arrives: server-sent `data:` lines, each a chunk
    /// whose `choices[0].delta.content` is a piece of the output, until `data: [DONE]` or
    /// the end of the body. A cancel ends the read at the next buffer.
    private func read(stream body: HTTPClientResponse.Body, url: String) async throws -> String {
        let agent = definition.id
        var output = ""
        var line: [UInt8] = []
        var total = 0
        let decoder = JSONDecoder()
        /// Handles one complete line; true at `[DONE]`.
        func handle(_ line: ArraySlice<UInt8>) throws -> Bool {
            var payload = line
            if payload.last == UInt8(ascii: "\r") { payload = payload.dropLast() }
            guard payload.starts(with: "data:".utf8) else { return false }
            payload = payload.dropFirst(5)
            if payload.first == UInt8(ascii: " ") { payload = payload.dropFirst() }
            if payload.elementsEqual("[DONE]".utf8) { return true }
            guard !payload.isEmpty else { return false }
            // An attempt that timed out or was cancelled sends nothing more (its next one may have begun).
            try Task.checkCancellation()
            let chunk: Chunk
            do {
                chunk = try decoder.decode(Chunk.self, from: Data(payload))
            } catch {
                throw AgentFailure(agent: agent, message: "LLM provider streamed a chunk that is not a chat completion chunk: "
                                   + Self.excerpt(String(decoding: payload, as: UTF8.self)))
            }
            if let usage = chunk.usage { run.usage(agent, usage.tokens) }
            if let piece = chunk.choices?.first?.delta?.content, !piece.isEmpty {
                output += piece
                run.token(agent, piece)
            }
            return false
        }
        do {
            for try await buffer in body {
                try Task.checkCancellation()
                total += buffer.readableBytes
                guard total <= Self.maxResponseBytes else {
                    throw AgentFailure(agent: agent, message: "LLM provider streamed more than \(Self.maxResponseBytes) bytes")
                }
                try buffer.withUnsafeReadableBytes { bytes in
                    var start = 0
                    for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
                        let done: Bool
                        if line.isEmpty {
                            done = try handle(ArraySlice(bytes[start..<index]))
                        } else {
                            line.append(contentsOf: bytes[start..<index])
                            done = try handle(line[...])
                            line.removeAll(keepingCapacity: true)
                        }
                        start = index + 1
                        if done { throw StreamEnd() }
                    }
                    line.append(contentsOf: bytes[start...])
                }
            }
        } catch is StreamEnd {
            return output
        }
        if !line.isEmpty { _ = try handle(line[...]) }
        return output
    }
}

/// `data: [DONE]` was read: the completion is whole.
private struct StreamEnd: Error {}

extension LLMClient {
    static func excerpt(_ text: String, limit: Int = 200) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        return flat.count > limit ? String(flat.prefix(limit)) + "…" : flat
    }
}
