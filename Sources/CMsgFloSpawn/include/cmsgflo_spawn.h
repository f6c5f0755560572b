#ifndef CMSGFLO_SPAWN_H
#define CMSGFLO_SPAWN_H

#include <sys/types.h>

/// Starts `path` (an absolute or relative path, not looked up on PATH) with `argv` and `envp` as a child of the
/// calling process: fork, then in the child, before exec, and only async-signal-safe calls:
/// - `death_signal` > 0: prctl(PR_SET_PDEATHSIG, death_signal), so that the kernel sends it to the child when the
///   *thread* that called this function ends (call it from a thread that lives as long as the process); if the
///   parent (`parent`, its pid) died before that call, the child exits at once (status 127);
/// - its own process group (so that a signal to the group reaches what it starts in turn);
/// - every signal back to its default disposition and none blocked;
/// - stdin from `stdin_fd`, stdout and stderr to `stdout_fd`/`stderr_fd`, each /dev/null when negative;
/// - `cwd` as its working directory when not NULL.
/// Returns the child's pid, or -errno when fork, prctl, chdir or exec failed (the failed child is reaped here).
pid_t cmsgflo_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdin_fd,
                    int stdout_fd, int stderr_fd, int death_signal, pid_t parent);

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec from the start, so that a child forked meanwhile by another
/// thread never inherits them (which would keep a reader from ever seeing the end of the pipe). 0 or -errno.
int cmsgflo_pipe(int fds[2]);

/// fcntl(fd, F_DUPFD_CLOEXEC, 3): a copy of `fd` that no child inherits unless it is given to one. The new
/// descriptor or -errno.
int cmsgflo_dup(int fd);

#endif
