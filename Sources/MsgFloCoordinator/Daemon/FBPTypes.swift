import FBP

// The FBP module has an enum named FBP, so `FBP.JSONValue` does not name its JSON type; this file imports FBP alone
// and names it for the adapter.
package typealias FBPJSONValue = JSONValue
package typealias FBPGraph = Graph
