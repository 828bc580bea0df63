#include <sys/vfs.h>
#include <sys/statvfs.h>
#include <sys/mount.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>
int pipe2(int pipefd[2], int flags);
int syncfs(int fd);
