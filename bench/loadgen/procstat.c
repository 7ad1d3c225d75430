#include "procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void proc_path(char *buf, size_t len, int pid, const char *file)
{
    if (pid > 0)
        snprintf(buf, len, "/proc/%d/%s", pid, file);
    else
        snprintf(buf, len, "/proc/self/%s", file);
}

double lg_proc_cpu_seconds(int pid)
{
    char path[64], buf[1024];
    proc_path(path, sizeof path, pid, "stat");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name (field 2) may hold spaces and parentheses: start after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    /* fields 3.. follow; utime is field 14, stime field 15 */
    unsigned long long utime = 0, stime = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (field < 15)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)(hz > 0 ? hz : 100);
}

long lg_proc_rss_kib(int pid)
{
    char path[64], line[256];
    proc_path(path, sizeof path, pid, "status");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

int lg_proc_alive(int pid)
{
    char path[64];
    proc_path(path, sizeof path, pid, "stat");
    return access(path, R_OK) == 0;
}

int lg_proc_ctxsw(int pid, long long *voluntary, long long *nonvoluntary)
{
    char path[64], line[256];
    proc_path(path, sizeof path, pid, "status");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int found = 0;
    *voluntary = *nonvoluntary = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) {
            *voluntary = strtoll(line + 24, NULL, 10);
            found++;
        } else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0) {
            *nonvoluntary = strtoll(line + 27, NULL, 10);
            found++;
        }
    }
    fclose(f);
    return found == 2 ? 0 : -1;
}
