/* forth: a small Forth interpreter for WASI. Reads source from the files named on the command
 * line ("-" for standard input), or from standard input when there are none, and runs it.
 *
 * Words: integer literals, + - * / mod negate abs min max = < > and or xor invert
 * dup drop swap over rot nip tuck 2dup . .s emit cr space spaces
 * : NAME ... ;  if else then  begin until  begin while repeat  do loop +loop i j
 * variable NAME  @ !  +!  ( comments )  \ line comments  ." text"  bye (exit code from stack)
 * Errors (unknown word, stack underflow, division by zero) print a message and exit 1. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t cell;

enum op {
    OP_LIT, OP_CALL, OP_RET, OP_JMP, OP_JZ, OP_DO, OP_LOOP, OP_PLOOP, OP_I, OP_J, OP_STR,
    OP_PRIM
};

typedef struct { int op; cell arg; } insn;
typedef struct { char name[32]; int prim; int code; } word;

#define CODE_MAX 65536
#define WORDS_MAX 1024
#define STACK_MAX 1024
#define MEM_CELLS 4096
#define STR_MAX 65536

static insn code[CODE_MAX];
static int ncode;
static word dict[WORDS_MAX];
static int nwords;
static cell stack[STACK_MAX];
static int sp;
static cell rstack[STACK_MAX];
static int rsp;
static cell mem[MEM_CELLS];
static int nmem;
static char strings[STR_MAX];
static int nstrings;
static long steps;

static void die(const char *msg, const char *what) {
    fflush(stdout);
    printf("\nerror: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
    exit(1);
}

static void push(cell v) { if (sp >= STACK_MAX) die("stack overflow", 0); stack[sp++] = v; }
static cell pop(void) { if (sp <= 0) die("stack underflow", 0); return stack[--sp]; }
static void rpush(cell v) { if (rsp >= STACK_MAX) die("return stack overflow", 0); rstack[rsp++] = v; }
static cell rpop(void) { if (rsp <= 0) die("return stack underflow", 0); return rstack[--rsp]; }

static const char *prims[] = {
    "+", "-", "*", "/", "mod", "negate", "abs", "min", "max", "=", "<", ">", "and", "or",
    "xor", "invert", "dup", "drop", "swap", "over", "rot", "nip", "tuck", "2dup", ".", ".s",
    "emit", "cr", "space", "spaces", "@", "!", "+!", "bye", 0
};

static void prim(int p) {
    cell a, b, c;
    switch (p) {
    case 0: b = pop(); a = pop(); push(a + b); break;
    case 1: b = pop(); a = pop(); push(a - b); break;
    case 2: b = pop(); a = pop(); push(a * b); break;
    case 3: b = pop(); a = pop(); if (!b) die("division by zero", 0); push(a / b); break;
    case 4: b = pop(); a = pop(); if (!b) die("division by zero", 0); push(a % b); break;
    case 5: push(-pop()); break;
    case 6: a = pop(); push(a < 0 ? -a : a); break;
    case 7: b = pop(); a = pop(); push(a < b ? a : b); break;
    case 8: b = pop(); a = pop(); push(a > b ? a : b); break;
    case 9: b = pop(); a = pop(); push(a == b ? -1 : 0); break;
    case 10: b = pop(); a = pop(); push(a < b ? -1 : 0); break;
    case 11: b = pop(); a = pop(); push(a > b ? -1 : 0); break;
    case 12: b = pop(); a = pop(); push(a & b); break;
    case 13: b = pop(); a = pop(); push(a | b); break;
    case 14: b = pop(); a = pop(); push(a ^ b); break;
    case 15: push(~pop()); break;
    case 16: a = pop(); push(a); push(a); break;
    case 17: pop(); break;
    case 18: b = pop(); a = pop(); push(b); push(a); break;
    case 19: b = pop(); a = pop(); push(a); push(b); push(a); break;
    case 20: c = pop(); b = pop(); a = pop(); push(b); push(c); push(a); break;
    case 21: b = pop(); pop(); push(b); break;
    case 22: b = pop(); a = pop(); push(b); push(a); push(b); break;
    case 23: b = pop(); a = pop(); push(a); push(b); push(a); push(b); break;
    case 24: printf("%lld ", (long long)pop()); break;
    case 25:
        printf("<%d> ", sp);
        for (int k = 0; k < sp; k++) printf("%lld ", (long long)stack[k]);
        break;
    case 26: putchar((int)pop()); break;
    case 27: putchar('\n'); break;
    case 28: putchar(' '); break;
    case 29: for (a = pop(); a > 0; a--) putchar(' '); break;
    case 30: a = pop(); if (a < 0 || a >= nmem) die("bad address", 0); push(mem[a]); break;
    case 31: a = pop(); b = pop(); if (a < 0 || a >= nmem) die("bad address", 0); mem[a] = b; break;
    case 32: a = pop(); b = pop(); if (a < 0 || a >= nmem) die("bad address", 0); mem[a] += b; break;
    case 33: fflush(stdout); exit(sp ? (int)pop() : 0);
    }
}

static void run(int pc) {
    rpush(-1);
    while (pc >= 0) {
        insn *in = &code[pc++];
        steps++;
        switch (in->op) {
        case OP_LIT: push(in->arg); break;
        case OP_CALL: rpush(pc); pc = (int)in->arg; break;
        case OP_RET: pc = (int)rpop(); break;
        case OP_JMP: pc = (int)in->arg; break;
        case OP_JZ: if (!pop()) pc = (int)in->arg; break;
        case OP_DO: { cell start = pop(), limit = pop(); rpush(limit); rpush(start); break; }
        case OP_LOOP:
        case OP_PLOOP: {
            cell step = in->op == OP_PLOOP ? pop() : 1;
            cell idx = rpop(), limit = rpop();
            cell next = idx + step;
            int done = step > 0 ? (idx < limit && next >= limit) : (idx >= limit && next < limit);
            if (!done) { rpush(limit); rpush(next); pc = (int)in->arg; }
            break;
        }
        case OP_I: if (rsp < 1) die("i outside a loop", 0); push(rstack[rsp - 1]); break;
        case OP_J: if (rsp < 3) die("j outside a nested loop", 0); push(rstack[rsp - 3]); break;
        case OP_STR: fputs(strings + in->arg, stdout); break;
        case OP_PRIM: prim((int)in->arg); break;
        }
    }
}

/* The source, and the reader's position in it. */
static char *src;
static size_t srclen, pos;

static int next_token(char *tok, size_t cap) {
    while (pos < srclen && isspace((unsigned char)src[pos])) pos++;
    if (pos >= srclen) return 0;
    size_t n = 0;
    while (pos < srclen && !isspace((unsigned char)src[pos])) {
        if (n + 1 < cap) tok[n++] = (char)tolower((unsigned char)src[pos]);
        pos++;
    }
    tok[n] = 0;
    return 1;
}

static void emit(int op, cell arg) {
    if (ncode >= CODE_MAX) die("program too large", 0);
    code[ncode].op = op;
    code[ncode].arg = arg;
    ncode++;
}

static int find(const char *name) {
    for (int k = nwords - 1; k >= 0; k--)
        if (strcmp(dict[k].name, name) == 0) return k;
    return -1;
}

static int parse_number(const char *t, cell *out) {
    char *end;
    long long v = strtoll(t, &end, 10);
    if (*t == 0 || *end != 0 || (!isdigit((unsigned char)t[0]) && !(t[0] == '-' && t[1]))) return 0;
    *out = v;
    return 1;
}

static int cstack[256];
static int csp;

static void compile_token(const char *t) {
    cell v;
    int w;
    if (strcmp(t, "if") == 0) { cstack[csp++] = ncode; emit(OP_JZ, 0); }
    else if (strcmp(t, "else") == 0) {
        int at = cstack[--csp];
        cstack[csp++] = ncode;
        emit(OP_JMP, 0);
        code[at].arg = ncode;
    }
    else if (strcmp(t, "then") == 0) { code[cstack[--csp]].arg = ncode; }
    else if (strcmp(t, "begin") == 0) { cstack[csp++] = ncode; }
    else if (strcmp(t, "until") == 0) { emit(OP_JZ, cstack[--csp]); }
    else if (strcmp(t, "while") == 0) { cstack[csp++] = ncode; emit(OP_JZ, 0); }
    else if (strcmp(t, "repeat") == 0) {
        int wh = cstack[--csp], be = cstack[--csp];
        emit(OP_JMP, be);
        code[wh].arg = ncode;
    }
    else if (strcmp(t, "do") == 0) { emit(OP_DO, 0); cstack[csp++] = ncode; }
    else if (strcmp(t, "loop") == 0) { emit(OP_LOOP, cstack[--csp]); }
    else if (strcmp(t, "+loop") == 0) { emit(OP_PLOOP, cstack[--csp]); }
    else if (strcmp(t, "i") == 0) emit(OP_I, 0);
    else if (strcmp(t, "j") == 0) emit(OP_J, 0);
    else if ((w = find(t)) >= 0) {
        if (dict[w].prim >= 0) emit(OP_PRIM, dict[w].prim);
        else emit(OP_CALL, dict[w].code);
    }
    else if (parse_number(t, &v)) emit(OP_LIT, v);
    else die("unknown word", t);
    if (csp < 0 || csp >= 256) die("unbalanced control words", t);
}

static void add_word(const char *name, int p, int c) {
    if (nwords >= WORDS_MAX) die("dictionary full", 0);
    snprintf(dict[nwords].name, sizeof dict[nwords].name, "%s", name);
    dict[nwords].prim = p;
    dict[nwords].code = c;
    nwords++;
}

static void interpret(void) {
    char tok[64];
    int compiling = 0;
    int def_start = 0;
    char def_name[32] = "";
    while (next_token(tok, sizeof tok)) {
        if (strcmp(tok, "(") == 0) { while (pos < srclen && src[pos] != ')') pos++; pos++; continue; }
        if (strcmp(tok, "\\") == 0) { while (pos < srclen && src[pos] != '\n') pos++; continue; }
        if (strcmp(tok, ".\"") == 0) {
            size_t start = ++pos;
            while (pos < srclen && src[pos] != '"') pos++;
            size_t n = pos - start;
            if (nstrings + (int)n + 1 > STR_MAX) die("too many strings", 0);
            memcpy(strings + nstrings, src + start, n);
            strings[nstrings + n] = 0;
            int at = ncode;
            emit(OP_STR, nstrings);
            nstrings += (int)n + 1;
            pos++;
            if (!compiling) { emit(OP_RET, 0); run(at); ncode = at; }
            continue;
        }
        if (strcmp(tok, ":") == 0) {
            if (!next_token(def_name, sizeof def_name)) die("`:` needs a name", 0);
            compiling = 1;
            def_start = ncode;
            csp = 0;
            continue;
        }
        if (strcmp(tok, ";") == 0) {
            if (!compiling) die("`;` outside a definition", 0);
            if (csp != 0) die("unbalanced control words in", def_name);
            emit(OP_RET, 0);
            add_word(def_name, -1, def_start);
            compiling = 0;
            continue;
        }
        if (strcmp(tok, "variable") == 0) {
            char name[32];
            if (!next_token(name, sizeof name)) die("`variable` needs a name", 0);
            if (nmem >= MEM_CELLS) die("out of variable space", 0);
            int at = ncode;
            emit(OP_LIT, nmem++);
            emit(OP_RET, 0);
            add_word(name, -1, at);
            continue;
        }
        if (compiling) { compile_token(tok); continue; }
        /* Interpret: compile the token alone and run it. */
        int at = ncode;
        csp = 0;
        compile_token(tok);
        if (csp != 0) die("control word outside a definition", tok);
        emit(OP_RET, 0);
        run(at);
        ncode = at;
    }
    if (compiling) die("unfinished definition", def_name);
}

static char *slurp(FILE *f, size_t *len) {
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    for (int k = 0; prims[k]; k++) add_word(prims[k], k, 0);
    for (int a = 1; a <= (argc > 1 ? argc - 1 : 1); a++) {
        FILE *f = argc > 1 && strcmp(argv[a], "-") != 0 ? fopen(argv[a], "r") : stdin;
        if (!f) { perror(argv[a]); return 2; }
        src = slurp(f, &srclen);
        if (f != stdin) fclose(f);
        if (!src) { fprintf(stderr, "forth: out of memory\n"); return 2; }
        pos = 0;
        interpret();
        free(src);
    }
    fflush(stdout);
    fprintf(stderr, "forth: %ld steps\n", steps);
    return 0;
}
