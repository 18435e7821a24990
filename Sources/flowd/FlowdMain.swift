import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The entry point: parses the command line, runs the command, and maps failures to the
/// contract's exit statuses.
@main
enum FlowdMain {
    static func main() async {
        do {
            var command = try Flowd.parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            // What was logged before the failure (a startup error) goes out before the exit.
            LogOutput.shared.flush()
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
