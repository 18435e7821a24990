import ArgumentParser

/// `flowd`: serve, validate, run.
struct Flowd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowd",
        abstract: "Runs agent flows for REST clients.",
        subcommands: [Serve.self, Validate.self, Run.self, BenchEngine.self]
    )
}
