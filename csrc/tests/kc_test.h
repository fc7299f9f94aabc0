/* kc_test.h - a minimal unit-test harness for the C core (no Python). */
#ifndef KC_TEST_H
#define KC_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int kc_test_failures = 0;
static int kc_test_checks = 0;

#define CHECK(cond) do { kc_test_checks++; if (!(cond)) { kc_test_failures++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); kc_test_checks++; \
    if (_a != _b) { kc_test_failures++; \
    fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, _a, _b); } } while (0)
#define RUN(fn) do { fprintf(stderr, "  %s\n", #fn); fn(); } while (0)
#define TEST_MAIN_END() do { printf("%d checks, %d failed\n", kc_test_checks, kc_test_failures); \
    return kc_test_failures ? 1 : 0; } while (0)
#endif
