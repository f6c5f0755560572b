#define _GNU_SOURCE
#include "cmsgflo_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void report_and_exit(int fd, int error) {
    ssize_t n;
    do { n = write(fd, &error, sizeof error); } while (n < 0 && errno == EINTR);
    _exit(127);
}

pid_t cmsgflo_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd, int stdin_fd,
                    int stdout_fd, int stderr_fd, int death_signal, pid_t parent) {
    // The child tells an exec failure through this pipe; a successful exec closes it (O_CLOEXEC).
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) return -errno;
    // Every signal blocked across fork: the child must not run the parent's handlers before it resets them.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(errpipe[0]);
        if (death_signal > 0) {
            if (prctl(PR_SET_PDEATHSIG, death_signal, 0, 0, 0) != 0) report_and_exit(errpipe[1], errno);
            // The parent died between fork and prctl: nobody will send the signal any more.
            if (getppid() != parent) _exit(127);
        }
        setpgid(0, 0);
        for (int s = 1; s < NSIG; s++) {
            if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
        }
        int null = open("/dev/null", O_RDWR);
        if (null < 0) report_and_exit(errpipe[1], errno);
        if (dup2(stdin_fd >= 0 ? stdin_fd : null, 0) < 0) report_and_exit(errpipe[1], errno);
        if (dup2(stdout_fd >= 0 ? stdout_fd : null, 1) < 0) report_and_exit(errpipe[1], errno);
        if (dup2(stderr_fd >= 0 ? stderr_fd : null, 2) < 0) report_and_exit(errpipe[1], errno);
        if (null > 2) close(null);
        if (cwd != NULL && chdir(cwd) != 0) report_and_exit(errpipe[1], errno);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp);
        report_and_exit(errpipe[1], errno);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(errpipe[1]);
    if (pid < 0) {
        close(errpipe[0]);
        return -fork_errno;
    }
    int child_errno = 0;
    ssize_t n;
    do { n = read(errpipe[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t)sizeof child_errno) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return -(child_errno ? child_errno : ECHILD);
    }
    return pid;
}

int cmsgflo_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int cmsgflo_dup(int fd) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    return copy >= 0 ? copy : -errno;
}
