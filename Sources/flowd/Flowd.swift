import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `flowd`: serve, validate, run.
struct Flowd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flowd",
        abstract: "Runs agent flows for REST clients.",
        subcommands: [Serve.self, Validate.self, Run.self, BenchEngine.self]
    )
}

@main
enum Main {
    static func main() async {
        do {
            var command = try Flowd.parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            // Bad usage or input is exit status 2, as the contract says.
            let code = Flowd.exitCode(for: error)
            if code == .validationFailure {
                FileHandle.standardError.write(Data((Flowd.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            Flowd.exit(withError: error)
        }
    }
}
