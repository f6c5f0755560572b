#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

func fflushStdout() { fflush(nil) }  // all output streams; naming `stdout` is not concurrency-safe in Swift 6
