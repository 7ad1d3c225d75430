/* What /proc says about a process: CPU time and resident memory. */
#ifndef LG_PROCSTAT_H
#define LG_PROCSTAT_H

/* utime + stime of pid (0 = this process) in seconds, or -1 when unreadable. */
double lg_proc_cpu_seconds(int pid);
/* VmRSS of pid (0 = this process) in KiB, or -1 when unreadable. */
long lg_proc_rss_kib(int pid);
/* voluntary and nonvoluntary context switches of pid (0 = this process); -1 when unreadable. */
int lg_proc_ctxsw(int pid, long long *voluntary, long long *nonvoluntary);

/* 1 when /proc/<pid> exists. */
int lg_proc_alive(int pid);

#endif
