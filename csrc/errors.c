#include "r13.h"

#define R13__ERRCASE(name, value, text) case value: return text;

const char *r13_strerror(int code)
{
    switch (code) {
        R13_ERRORS(R13__ERRCASE)
    default:
        return "unknown r13 error";
    }
}
