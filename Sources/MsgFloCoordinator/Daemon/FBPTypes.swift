import FBP

// The FBP module has an enum named FBP, so `FBP.Graph` does not name its graph type; this file imports FBP alone
// and names it for the adapter.
package typealias FBPGraph = Graph
