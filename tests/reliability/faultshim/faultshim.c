/* An LD_PRELOAD fault-injection shim for the reliability tests.
 *
 * Switched by files in the folder named by $VAULTD_FAULT_DIR, checked at every call:
 *   fsync    present: fsync, fdatasync, syncfs and msync fail with EIO (nothing is synced);
 *   enospc   present: write, pwrite, pwritev, writev and fallocate on regular files fail with
 *            ENOSPC (sockets, pipes and terminals are untouched).
 * Each injected failure is counted in $VAULTD_FAULT_DIR/count (one byte appended per failure), so a
 * test can tell that the fault was really injected.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static int switched(const char *name) {
    const char *dir = getenv("VAULTD_FAULT_DIR");
    char path[PATH_MAX];
    struct stat st;
    if (dir == NULL) return 0;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return 0;
    return stat(path, &st) == 0;
}

static void count(void) {
    const char *dir = getenv("VAULTD_FAULT_DIR");
    char path[PATH_MAX];
    static ssize_t (*real_write)(int, const void *, size_t);
    if (dir == NULL) return;
    if (!real_write) real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (snprintf(path, sizeof path, "%s/count", dir) >= (int)sizeof path) return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)real_write(fd, "x", 1);
        close(fd);
    }
}

static int regular(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

#define REAL(ret, name, ...) \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name) real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

int fsync(int fd) {
    REAL(int, fsync, int);
    if (switched("fsync")) { count(); errno = EIO; return -1; }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(int, fdatasync, int);
    if (switched("fsync")) { count(); errno = EIO; return -1; }
    return real_fdatasync(fd);
}

int syncfs(int fd) {
    REAL(int, syncfs, int);
    if (switched("fsync")) { count(); errno = EIO; return -1; }
    return real_syncfs(fd);
}

int msync(void *addr, size_t len, int flags) {
    REAL(int, msync, void *, size_t, int);
    if (switched("fsync")) { count(); errno = EIO; return -1; }
    return real_msync(addr, len, flags);
}

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(ssize_t, write, int, const void *, size_t);
    if (n && regular(fd) && switched("enospc")) { count(); errno = ENOSPC; return -1; }
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    if (n && regular(fd) && switched("enospc")) { count(); errno = ENOSPC; return -1; }
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
    if (n && regular(fd) && switched("enospc")) { count(); errno = ENOSPC; return -1; }
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(ssize_t, writev, int, const struct iovec *, int);
    if (cnt && regular(fd) && switched("enospc")) { count(); errno = ENOSPC; return -1; }
    return real_writev(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t);
    if (cnt && regular(fd) && switched("enospc")) { count(); errno = ENOSPC; return -1; }
    return real_pwritev(fd, iov, cnt, off);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL(int, fallocate, int, int, off_t, off_t);
    if (regular(fd) && switched("enospc")) { count(); errno = ENOSPC; return -1; }
    return real_fallocate(fd, mode, off, len);
}
