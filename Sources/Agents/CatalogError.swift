/// Loading failed; `problems` lists every problem found, sorted by file and line.
public enum CatalogError: Error, Sendable, CustomStringConvertible {
    case problems([CatalogProblem])

    public var problems: [CatalogProblem] {
        switch self { case let .problems(problems): problems }
    }

    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
