/*
 * tether-pause: the process that holds a pod sandbox's namespaces open for containerd.
 *
 * It does nothing but wait. As PID 1 of the sandbox it gets no default signal handling from the
 * kernel, so SIGINT and SIGTERM are handled explicitly (exit 0), and SIGCHLD reaps any child that
 * was reparented to it, so no zombies pile up in a pod that shares its PID namespace.
 *
 * Build: gcc -static -Os -o pause pause.c      Usage: pause [-v]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TETHER_PAUSE_VERSION
#define TETHER_PAUSE_VERSION "dev"
#endif

static void on_stop(int signo) {
  (void)signo;
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int handle(int signo, void (*handler)(int)) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = signo == SIGCHLD ? SA_NOCLDSTOP | SA_RESTART : SA_RESTART;
  return sigaction(signo, &action, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("tether-pause %s\n", TETHER_PAUSE_VERSION);
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "usage: pause [-v]\n");
    return 2;
  }
  if (handle(SIGINT, on_stop) != 0 || handle(SIGTERM, on_stop) != 0 || handle(SIGCHLD, on_child) != 0) {
    perror("pause: sigaction");
    return 1;
  }
  if (getpid() != 1) fprintf(stderr, "pause: running as pid %d, not as a sandbox's pid 1\n", (int)getpid());
  for (;;) pause();
}
