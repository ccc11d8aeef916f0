/* A fault for the journal test (issue 18, item 6), preloaded into petrel with LD_PRELOAD:
 * fdatasync of a journal segment fails with EIO once each time the file named by
 * PETREL_FAIL_FDATASYNC_TRIGGER exists (the call removes it). Every other call is the real one.
 * Built by the test with the system's C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    const char *trigger = getenv("PETREL_FAIL_FDATASYNC_TRIGGER");
    if (trigger) {
        char link[64];
        char target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t length = readlink(link, target, sizeof target - 1);
        if (length > 0) {
            target[length] = 0;
            if (strstr(target, "/journal/seg-") && unlink(trigger) == 0) {
                errno = EIO;
                return -1;
            }
        }
    }
    return real ? real(fd) : -1;
}
