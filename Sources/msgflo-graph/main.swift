print("msgflo-graph: not built yet")
