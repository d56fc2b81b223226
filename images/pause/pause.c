/*
 * ferry's pause: the process that holds a pod sandbox's namespaces open.
 *
 * It sleeps in pause() forever, reaps any zombie re-parented to it (it is PID 1 of the pod's PID
 * namespace when the pod shares one), and exits 0 on SIGINT or SIGTERM so StopPodSandbox is
 * quick. Built with `gcc -static -Os` so the image needs nothing but this binary.
 * Same contract as Kubernetes' build/pause/linux/pause.c; written for ferry.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "ferry-pause 3.10"

static void on_stop(int sig) {
  /* write(2) is async-signal-safe; printf is not. */
  static const char msg[] = "pause: shutting down\n";
  (void)sig;
  (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
  _exit(0);
}

static void on_child(int sig) {
  int saved = errno;
  (void)sig;
  /* One SIGCHLD may stand for several exits: reap until none is left. */
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

static int install(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    puts(VERSION);
    return 0;
  }
  if (getpid() != 1) {
    /* Not an error: useful when run by hand, but zombies of other processes are not ours. */
    fprintf(stderr, "pause: warning: not running as PID 1\n");
  }
  if (install(SIGINT, on_stop, 0) < 0 || install(SIGTERM, on_stop, 0) < 0 ||
      install(SIGCHLD, on_child, SA_NOCLDSTOP | SA_RESTART) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
  return 1; /* not reached */
}
