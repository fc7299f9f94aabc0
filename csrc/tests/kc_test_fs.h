/* kc_test_fs.h - scratch directories for the C tests that write logs. */
#ifndef KC_TEST_FS_H
#define KC_TEST_FS_H
#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

/* Remove dir and the files in it (the log tests never nest directories). */
static inline void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* The directory of the test running now (tests reopen it by this name). */
static char g_dir[256];

/* An empty /tmp/kc_test_<suite>_<pid>_<name>, kept in g_dir. */
static inline const char *kc_test_fresh_dir(const char *suite, const char *name) {
    snprintf(g_dir, sizeof g_dir, "/tmp/kc_test_%s_%d_%s", suite, (int)getpid(), name);
    rm_rf(g_dir);
    return g_dir;
}
#endif
