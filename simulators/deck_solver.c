/*
 * deck_solver: a damped, harmonically driven oscillator integrated with RK4.
 *
 * A stand-in for a compiled simulation code driven by a text input deck. It
 * reads `key = value` lines from the file named by argv[1] ('#' starts a
 * comment), integrates
 *
 *     m x'' + c x' + k x = F0 cos(w t),   c = 2 zeta m w0,  k = m w0^2,  w = r w0,
 *
 * from x(0) = x0, x'(0) = v0 to t_end with n_steps classical fourth-order
 * Runge-Kutta steps, and prints `key = value` lines on stdout:
 *
 *     amplitude     max |x| over the last two drive periods (m)
 *     x_final       x(t_end) (m)
 *     v_final       x'(t_end) (m/s)
 *     energy_final  kinetic + potential energy at t_end (J)
 *
 * Deck keys (all required, each once): mass (kg), natural_frequency w0
 * (rad/s), damping_ratio zeta, frequency_ratio r, force_amplitude F0 (N),
 * x0 (m), v0 (m/s), t_end (s), n_steps (integer).
 *
 * Exit codes: 0 success; 2 unreadable or invalid deck (one line on stderr
 * naming the line and key); 1 the integration produced a non-finite value.
 *
 * Build: cc -O2 -o deck_solver deck_solver.c -lm
 * Run:   ./deck_solver deck.in
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_KEYS 9
#define MAX_LINE 1024
#define MAX_STEPS 1000000000.0
/* M_PI is POSIX, not ISO C: spell pi out so the code builds with -std=c99 too. */
#define PI 3.14159265358979323846

enum { MASS, NATURAL_FREQUENCY, DAMPING_RATIO, FREQUENCY_RATIO, FORCE_AMPLITUDE, X0, V0, T_END, N_STEPS };

static const char *const KEYS[N_KEYS] = {
    "mass", "natural_frequency", "damping_ratio", "frequency_ratio", "force_amplitude",
    "x0", "v0", "t_end", "n_steps",
};

static double values[N_KEYS];
static int seen[N_KEYS];

static char *trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int find_key(const char *key)
{
    int k;
    for (k = 0; k < N_KEYS; k++)
        if (strcmp(key, KEYS[k]) == 0)
            return k;
    return -1;
}

static void list_keys(FILE *out)
{
    int k;
    for (k = 0; k < N_KEYS; k++)
        fprintf(out, "%s%s", k ? ", " : "", KEYS[k]);
}

/* Reads the deck into values[]; prints one line on stderr and returns 0 on any problem. */
static int read_deck(const char *path)
{
    char line[MAX_LINE];
    int lineno = 0, k;
    FILE *deck = fopen(path, "r");
    if (deck == NULL) {
        fprintf(stderr, "deck_solver: cannot open input deck '%s': %s\n", path, strerror(errno));
        return 0;
    }
    while (fgets(line, sizeof line, deck) != NULL) {
        char *text, *eq, *key, *val, *end, *hash;
        double number;
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(deck)) {
            fprintf(stderr, "deck_solver: %s:%d: line longer than %d characters\n", path, lineno, MAX_LINE - 2);
            fclose(deck);
            return 0;
        }
        hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        text = trim(line);
        if (*text == '\0')
            continue;
        eq = strchr(text, '=');
        if (eq == NULL) {
            fprintf(stderr, "deck_solver: %s:%d: expected 'key = value', got '%s'\n", path, lineno, text);
            fclose(deck);
            return 0;
        }
        *eq = '\0';
        key = trim(text);
        val = trim(eq + 1);
        k = find_key(key);
        if (k < 0) {
            fprintf(stderr, "deck_solver: %s:%d: unknown key '%s'; known keys: ", path, lineno, key);
            list_keys(stderr);
            fputc('\n', stderr);
            fclose(deck);
            return 0;
        }
        if (seen[k]) {
            fprintf(stderr, "deck_solver: %s:%d: key '%s' given twice; give each key once\n", path, lineno, key);
            fclose(deck);
            return 0;
        }
        errno = 0;
        number = strtod(val, &end);
        if (end == val || *trim(end) != '\0' || errno == ERANGE || !isfinite(number)) {
            fprintf(stderr, "deck_solver: %s:%d: value of '%s' is not a finite number: '%s'\n", path, lineno, key, val);
            fclose(deck);
            return 0;
        }
        values[k] = number;
        seen[k] = 1;
    }
    fclose(deck);
    for (k = 0; k < N_KEYS; k++) {
        if (!seen[k]) {
            fprintf(stderr, "deck_solver: %s: key '%s' is missing; required keys: ", path, KEYS[k]);
            list_keys(stderr);
            fputc('\n', stderr);
            return 0;
        }
    }
    return 1;
}

static int check_deck(const char *path)
{
    const double n = values[N_STEPS];
    if (!(values[MASS] > 0.0) || !(values[NATURAL_FREQUENCY] > 0.0) || !(values[T_END] > 0.0)) {
        fprintf(stderr, "deck_solver: %s: mass, natural_frequency and t_end must be > 0 (got %g, %g, %g)\n", path,
                values[MASS], values[NATURAL_FREQUENCY], values[T_END]);
        return 0;
    }
    if (values[DAMPING_RATIO] < 0.0 || !(values[FREQUENCY_RATIO] > 0.0)) {
        fprintf(stderr, "deck_solver: %s: damping_ratio must be >= 0 and frequency_ratio > 0 (got %g, %g)\n", path,
                values[DAMPING_RATIO], values[FREQUENCY_RATIO]);
        return 0;
    }
    if (n < 1.0 || n > MAX_STEPS || n != floor(n)) {
        fprintf(stderr, "deck_solver: %s: n_steps = %g must be an integer between 1 and %.0f\n", path, n, MAX_STEPS);
        return 0;
    }
    return 1;
}

/* Acceleration x'' = (F0 cos(w t) - c v - k x) / m. */
static double accel(double t, double x, double v, double m, double c, double k, double f0, double w)
{
    return (f0 * cos(w * t) - c * v - k * x) / m;
}

int main(int argc, char **argv)
{
    double m, w0, c, k, f0, w, x, v, dt, window_start, amplitude = 0.0;
    long i, n;
    if (argc != 2) {
        fprintf(stderr, "usage: %s DECK  (a text file of 'key = value' lines)\n", argc > 0 ? argv[0] : "deck_solver");
        return 2;
    }
    if (!read_deck(argv[1]) || !check_deck(argv[1]))
        return 2;

    m = values[MASS];
    w0 = values[NATURAL_FREQUENCY];
    c = 2.0 * values[DAMPING_RATIO] * m * w0;
    k = m * w0 * w0;
    f0 = values[FORCE_AMPLITUDE];
    w = values[FREQUENCY_RATIO] * w0;
    x = values[X0];
    v = values[V0];
    n = (long)values[N_STEPS];
    dt = values[T_END] / (double)n;
    /* The steady-state amplitude: the largest |x| once transients have had t_end minus two periods to decay. */
    window_start = values[T_END] - 2.0 * (2.0 * PI / w);

    for (i = 0; i < n; i++) {
        const double t = (double)i * dt;
        const double k1x = v;
        const double k1v = accel(t, x, v, m, c, k, f0, w);
        const double k2x = v + 0.5 * dt * k1v;
        const double k2v = accel(t + 0.5 * dt, x + 0.5 * dt * k1x, v + 0.5 * dt * k1v, m, c, k, f0, w);
        const double k3x = v + 0.5 * dt * k2v;
        const double k3v = accel(t + 0.5 * dt, x + 0.5 * dt * k2x, v + 0.5 * dt * k2v, m, c, k, f0, w);
        const double k4x = v + dt * k3v;
        const double k4v = accel(t + dt, x + dt * k3x, v + dt * k3v, m, c, k, f0, w);
        x += dt / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x);
        v += dt / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v);
        if ((double)(i + 1) * dt >= window_start && fabs(x) > amplitude)
            amplitude = fabs(x);
    }
    if (!isfinite(x) || !isfinite(v)) {
        fprintf(stderr, "deck_solver: the integration diverged (x = %g, v = %g); use more n_steps\n", x, v);
        return 1;
    }
    printf("# deck_solver: damped driven oscillator, %ld RK4 steps of %.6g s\n", n, dt);
    printf("amplitude = %.17g\n", amplitude);
    printf("x_final = %.17g\n", x);
    printf("v_final = %.17g\n", v);
    printf("energy_final = %.17g\n", 0.5 * m * v * v + 0.5 * k * x * x);
    return 0;
}
