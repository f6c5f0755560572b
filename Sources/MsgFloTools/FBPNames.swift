// The FBP module's names that clash with MsgFlo's (JSONValue) or Foundation's (Process), named apart. This file
// imports FBP alone so that the plain names below mean FBP's.
import FBP

typealias FBPJSONValue = JSONValue
typealias FBPGraph = Graph
