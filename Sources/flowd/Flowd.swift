import ArgumentParser

@main
struct Flowd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowd",
        abstract: "Runs agent flows for REST clients."
    )
}
