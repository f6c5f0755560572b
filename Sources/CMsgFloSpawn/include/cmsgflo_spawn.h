#ifndef CMSGFLO_SPAWN_H
#define CMSGFLO_SPAWN_H

#include <sys/types.h>

/// Starts `path` (an absolute or relative path, not looked up on PATH) with `argv` and `envp` as a child of the
/// calling process: fork, then in the child, before exec, and only async-signal-safe calls:
/// - `death_signal` > 0: prctl(PR_SET_PDEATHSIG, death_signal), so that the kernel sends it to the child when the
///   *thread* that called this function ends (call it from a thread that lives as long as the process); if the
///   parent (`parent`, its pid) died before that call, the child exits at once (status 127);
/// - its own process group; every signal back to its default disposition and none blocked;
/// - stdin from /dev/null; stdout and stderr to `stdout_fd`/`stderr_fd`, or /dev/null when negative.
/// Returns the child's pid, or -errno when fork, prctl or exec failed (the failed child is reaped here).
pid_t cmsgflo_spawn(const char *path, char *const argv[], char *const envp[], int stdout_fd, int stderr_fd,
                    int death_signal, pid_t parent);

#endif
