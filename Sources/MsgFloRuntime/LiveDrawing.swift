import FBP
import MsgFloCoordinator

/// The live view's drawing: the desired graph laid out by ``GraphLayout`` and written by ``SVGWriter`` (the same
/// picture as `msgflo-graph --svg`). Kept apart from LiveView.swift, whose JSON is MsgFlo's and not FBP's.
enum LiveDrawing {
    static func svg(_ graph: DesiredGraph) -> String {
        let fbp = AutoSaver.fbpGraph(AutoSaver.Snapshot(graph: graph, groups: []))
        return SVGWriter.document(GraphLayout(graph: fbp), title: graph.name)
    }

    /// A name as the SVG's `data-` attributes carry it.
    static func displayText(_ s: String) -> String { GraphLayout.displayText(s, max: 1_000) }
}
