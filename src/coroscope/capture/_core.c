/* coroscope's native capture core: the per-switch callbacks in C.
 *
 * The pure-Python twin is coroscope/capture/_callbacks.py (Capture.on_start, on_yield,
 * on_resume, on_throw, on_unwind); this file mirrors what those do on the common path and
 * hands everything else to the same Python methods, so both implementations build their
 * records with the same code:
 *
 *   PY_START   non-coroutine code: DISABLE.  A coroutine awaited by a coroutine standing
 *              at a SEND whose code the place cache has already judged: None, or DISABLE if
 *              its module is left out.  Anything else: Capture.on_start.
 *   PY_YIELD   look the task up by its root frame, end its step (times in the SwitchState
 *              fields).  A step to be logged: Capture._yielded; else keep the root's
 *              cr_await for the timer rule at the resume.
 *   PY_RESUME  end the wait.  A resume to be logged (or one whose suspend was written):
 *              Capture._resumed; else drop what the suspend kept.
 *   PY_THROW / PY_UNWIND   code that is not a coroutine: nothing; else the Python method.
 *
 * Rules: public C API only, except the 3.12 perf counter, which is behind a version guard;
 * every reference counted; no exception ever leaves a callback (it is handed to
 * Capture._error, and one raised there is dropped).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030C0000
#error "coroscope's native core needs Python 3.12 or newer (sys.monitoring)"
#endif

/* The clock of time.perf_counter_ns(), which the Python side compares these times with. */
static inline long long
now_ns(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_PerfCounterRaw(&t) < 0) {
        return 0; /* cannot fail on the platforms CPython supports */
    }
    return (long long)t;
#else
    return (long long)_PyTime_GetPerfCounter();
#endif
}

/* The getter of a coroutine's ``cr_await`` (from PyCoro_Type's public getset table), so
 * that the hot path does not look the attribute up by name each time. */
static getter coro_await_getter = NULL;

static void
find_coro_await_getter(void)
{
    for (PyGetSetDef *def = PyCoro_Type.tp_getset; def != NULL && def->name != NULL; def++) {
        if (strcmp(def->name, "cr_await") == 0) {
            coro_await_getter = def->get;
            return;
        }
    }
}

/* ``coro.cr_await`` (a new reference, or NULL with an error set). */
static PyObject *
awaited_by(PyObject *coro, PyObject *name)
{
    if (coro_await_getter != NULL && Py_IS_TYPE(coro, &PyCoro_Type)) {
        return coro_await_getter(coro, NULL);
    }
    return PyObject_GetAttr(coro, name);
}

/* ------------------------------------------------------------------------------------ */
/* SwitchState: the fields of a task's state that every switch reads and writes.        */

typedef struct {
    PyObject_HEAD
    long long resumed_ns;    /* the current step began (-1: unknown) */
    long long suspended_ns;  /* the last suspend (-1: none yet) */
    long long resumed_lasti; /* the root frame's offset where the current step began */
    long long switches;
    long long run_ns;
    long long wait_ns;
    long long suspend_seq;   /* the seq of the last suspend record written (-1: none) */
    PyObject *link;          /* the root's cr_await at its last suspend */
    PyObject *value;         /* what the task awaits (the yielded value) */
} SwitchState;

static PyObject *
state_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SwitchState *self = (SwitchState *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->resumed_ns = -1;
    self->suspended_ns = -1;
    self->resumed_lasti = -1;
    self->suspend_seq = -1;
    self->link = Py_NewRef(Py_None);
    self->value = Py_NewRef(Py_None);
    return (PyObject *)self;
}

static int
state_traverse(SwitchState *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->link);
    Py_VISIT(self->value);
    return 0;
}

static int
state_clear(SwitchState *self)
{
    Py_CLEAR(self->link);
    Py_CLEAR(self->value);
    return 0;
}

static void
state_dealloc(SwitchState *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    state_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMemberDef state_members[] = {
    {"resumed_ns", Py_T_LONGLONG, offsetof(SwitchState, resumed_ns), 0, NULL},
    {"suspended_ns", Py_T_LONGLONG, offsetof(SwitchState, suspended_ns), 0, NULL},
    {"resumed_lasti", Py_T_LONGLONG, offsetof(SwitchState, resumed_lasti), 0, NULL},
    {"switches", Py_T_LONGLONG, offsetof(SwitchState, switches), 0, NULL},
    {"run_ns", Py_T_LONGLONG, offsetof(SwitchState, run_ns), 0, NULL},
    {"wait_ns", Py_T_LONGLONG, offsetof(SwitchState, wait_ns), 0, NULL},
    {"suspend_seq", Py_T_LONGLONG, offsetof(SwitchState, suspend_seq), 0, NULL},
    {"link", Py_T_OBJECT_EX, offsetof(SwitchState, link), 0, NULL},
    {"value", Py_T_OBJECT_EX, offsetof(SwitchState, value), 0, NULL},
    {NULL},
};

static PyType_Slot state_slots[] = {
    {Py_tp_doc, "The per-switch fields of a task's state, stored natively."},
    {Py_tp_new, state_new},
    {Py_tp_traverse, state_traverse},
    {Py_tp_clear, state_clear},
    {Py_tp_dealloc, state_dealloc},
    {Py_tp_members, state_members},
    {0, NULL},
};

static PyType_Spec state_spec = {
    .name = "coroscope.capture._core.SwitchState",
    .basicsize = sizeof(SwitchState),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = state_slots,
};

/* ------------------------------------------------------------------------------------ */
/* Switches: the callbacks.                                                              */

#define ALLOWED_SLOTS 1024 /* a power of two */
#define ALLOWED_PROBES 8

static inline size_t
allowed_slot(PyObject *code)
{
    return ((uintptr_t)code >> 4) & (ALLOWED_SLOTS - 1);
}

typedef struct {
    PyObject_HEAD
    PyTypeObject *state_type; /* a subclass of SwitchState (checked when made) */
    PyObject *by_frame;       /* dict: root frame -> state */
    PyObject *codes;          /* the place cache: id(code) -> (code, places or None) */
    PyObject *disable;        /* sys.monitoring.DISABLE */
    PyObject *unawaited_code; /* Python's "never awaited" hook's code, or None */
    PyObject *on_start;       /* Capture.on_start(code, offset) */
    PyObject *yielded;        /* Capture._yielded(code, frame, state, value, now, step) */
    PyObject *resumed;        /* Capture._resumed(frame, state, now, waited) */
    PyObject *on_throw;       /* Capture.on_throw(code, offset, exc) */
    PyObject *on_unwind;      /* Capture.on_unwind(code, offset, exc) */
    PyObject *error;          /* Capture._error(exc) */
    PyObject *cr_await;       /* interned "cr_await" */
    long long slow_step_ns;
    long long slow_await_ns;
    int log_all;
    int send;                 /* the SEND opcode */
    /* Codes the place cache allows, seen awaited: a PY_START of one of them, awaited, is
     * answered here without a lookup.  Open addressing by address; strong references;
     * when full, the dict answers (the verdict of a code never changes). */
    PyObject *allowed[ALLOWED_SLOTS];
} Switches;

#define AWAITER_FLAGS (CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR)

/* Hand the current exception to Capture._error; never leave one set. */
static void
report_error(Switches *self)
{
    PyObject *exc = PyErr_GetRaisedException();
    if (exc == NULL) {
        return;
    }
    PyObject *res = PyObject_CallOneArg(self->error, exc);
    Py_DECREF(exc);
    if (res == NULL) {
        PyErr_Clear();
    }
    else {
        Py_DECREF(res);
    }
}

/* The state of the task whose root frame is `frame` (a new reference), or NULL: none,
 * or an error (set). */
static SwitchState *
state_of(Switches *self, PyFrameObject *frame)
{
    /* Keyed by the frame itself: frames hash and compare by identity. */
    PyObject *state = PyDict_GetItemWithError(self->by_frame, (PyObject *)frame);
    if (state == NULL || !PyObject_TypeCheck(state, self->state_type)) {
        return NULL;
    }
    return (SwitchState *)Py_NewRef(state);
}

static int
check_args(Py_ssize_t nargs, Py_ssize_t want, const char *name)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want,
                     nargs);
        return -1;
    }
    return 0;
}

/* Call `func` with `args`; its result is discarded, an error goes to report_error. */
static void
call_python(Switches *self, PyObject *func, PyObject *const *args, size_t nargs)
{
    PyObject *res = PyObject_Vectorcall(func, args, nargs, NULL);
    if (res == NULL) {
        report_error(self);
    }
    else {
        Py_DECREF(res);
    }
}

static PyObject *
switches_on_yield(Switches *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args(nargs, 3, "on_yield") < 0) {
        return NULL; /* a wrong call by Python code, not by the interpreter */
    }
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: the frame that yields */
    if (frame == NULL) {
        Py_RETURN_NONE;
    }
    SwitchState *state = state_of(self, frame);
    if (state == NULL) {
        report_error(self);
        Py_RETURN_NONE;
    }
    long long now = now_ns();
    long long step = state->resumed_ns >= 0 ? now - state->resumed_ns : -1;
    state->switches += 1;
    state->suspended_ns = now;
    if (step > 0) {
        state->run_ns += step;
    }
    PyObject *value = args[2];
    Py_SETREF(state->value, Py_NewRef(value));
    if (step >= self->slow_step_ns || self->log_all) {
        PyObject *now_obj = PyLong_FromLongLong(now);
        PyObject *step_obj = PyLong_FromLongLong(step);
        if (now_obj == NULL || step_obj == NULL) {
            report_error(self);
        }
        else {
            PyObject *call[6] = {args[0], (PyObject *)frame, (PyObject *)state, value,
                                 now_obj, step_obj};
            call_python(self, self->yielded, call, 6);
        }
        Py_XDECREF(now_obj);
        Py_XDECREF(step_obj);
    }
    else {
        /* Not logged now: keep what a slow wait would need at the resume. */
        state->suspend_seq = -1;
        PyObject *coro = PyFrame_GetGenerator(frame);
        PyObject *link = Py_None;
        if (coro != NULL) {
            link = awaited_by(coro, self->cr_await);
            Py_DECREF(coro);
        }
        else {
            Py_INCREF(link);
        }
        if (link == NULL) {
            report_error(self);
        }
        else {
            Py_SETREF(state->link, link);
        }
    }
    Py_DECREF(state);
    Py_RETURN_NONE;
}

static PyObject *
switches_on_resume(Switches *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args(nargs, 2, "on_resume") < 0) {
        return NULL;
    }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) {
        Py_RETURN_NONE;
    }
    SwitchState *state = state_of(self, frame);
    if (state == NULL) {
        report_error(self);
        Py_RETURN_NONE;
    }
    long long now = now_ns();
    long long suspended = state->suspended_ns;
    long long waited = suspended > state->resumed_ns ? now - suspended : -1;
    state->resumed_ns = now;
    if (waited > 0) {
        state->wait_ns += waited;
    }
    state->resumed_lasti = PyFrame_GetLasti(frame);
    if (state->suspend_seq >= 0 || self->log_all || waited >= self->slow_await_ns) {
        PyObject *now_obj = PyLong_FromLongLong(now);
        PyObject *waited_obj = PyLong_FromLongLong(waited);
        if (now_obj == NULL || waited_obj == NULL) {
            report_error(self);
        }
        else {
            PyObject *call[4] = {(PyObject *)frame, (PyObject *)state, now_obj, waited_obj};
            call_python(self, self->resumed, call, 4);
        }
        Py_XDECREF(now_obj);
        Py_XDECREF(waited_obj);
    }
    else {
        Py_SETREF(state->link, Py_NewRef(Py_None));
        Py_SETREF(state->value, Py_NewRef(Py_None));
    }
    Py_DECREF(state);
    Py_RETURN_NONE;
}

/* Whether `frame`'s caller is a coroutine standing at a SEND (it awaits `frame`):
 * 1 yes, 0 no, -1 error. */
static int
awaited_by_caller(Switches *self, PyFrameObject *frame)
{
    PyFrameObject *back = PyFrame_GetBack(frame);
    if (back == NULL) {
        return 0;
    }
    int found = 0;
    PyCodeObject *back_code = PyFrame_GetCode(back);
    if (back_code->co_flags & AWAITER_FLAGS) {
        /* The caller's offset is the SEND on 3.13, its cache entry on 3.12. */
        int lasti = PyFrame_GetLasti(back);
        PyObject *ops = PyCode_GetCode(back_code);
        if (ops == NULL) {
            found = -1;
        }
        else {
            const unsigned char *bytes = (const unsigned char *)PyBytes_AS_STRING(ops);
            Py_ssize_t size = PyBytes_GET_SIZE(ops);
            if (lasti >= 0 && lasti < size &&
                (bytes[lasti] == self->send || (lasti >= 2 && bytes[lasti - 2] == self->send))) {
                found = 1;
            }
            Py_DECREF(ops);
        }
    }
    Py_DECREF(back_code);
    Py_DECREF(back);
    return found;
}

static PyObject *
switches_on_start(Switches *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_args(nargs, 2, "on_start") < 0) {
        return NULL;
    }
    PyObject *code = args[0];
    if (!PyCode_Check(code)) {
        Py_RETURN_NONE;
    }
    if (!(((PyCodeObject *)code)->co_flags & CO_COROUTINE)) {
        if (code != self->unawaited_code) {
            return Py_NewRef(self->disable);
        }
    }
    else {
        PyFrameObject *frame = PyEval_GetFrame();
        if (frame == NULL) {
            Py_RETURN_NONE;
        }
        int awaited = awaited_by_caller(self, frame);
        if (awaited < 0) {
            report_error(self);
            Py_RETURN_NONE;
        }
        if (awaited) {
            /* Not a task's first step.  If the place cache has judged this code already,
             * answer from it; the first time, the Python method decides (and fills it). */
            size_t slot = allowed_slot(code);
            for (int probe = 0; probe < ALLOWED_PROBES; probe++) {
                PyObject *known = self->allowed[(slot + probe) & (ALLOWED_SLOTS - 1)];
                if (known == code) {
                    Py_RETURN_NONE;
                }
                if (known == NULL) {
                    break;
                }
            }
            PyObject *key = PyLong_FromVoidPtr(code);
            if (key == NULL) {
                report_error(self);
                Py_RETURN_NONE;
            }
            PyObject *entry = PyDict_GetItemWithError(self->codes, key);
            Py_DECREF(key);
            if (entry == NULL && PyErr_Occurred()) {
                report_error(self);
                Py_RETURN_NONE;
            }
            if (entry != NULL && PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 2 &&
                PyTuple_GET_ITEM(entry, 0) == code) {
                if (PyTuple_GET_ITEM(entry, 1) == Py_None) {
                    return Py_NewRef(self->disable);
                }
                for (int probe = 0; probe < ALLOWED_PROBES; probe++) {
                    PyObject **place = &self->allowed[(slot + probe) & (ALLOWED_SLOTS - 1)];
                    if (*place == NULL) {
                        *place = Py_NewRef(code);
                        break;
                    }
                }
                Py_RETURN_NONE;
            }
        }
    }
    PyObject *res = PyObject_Vectorcall(self->on_start, args, 2, NULL);
    if (res == NULL) {
        report_error(self);
        Py_RETURN_NONE;
    }
    return res;
}

/* PY_THROW and PY_UNWIND fire for every frame; only coroutines concern coroscope. */
static PyObject *
forward_if_awaiter(Switches *self, PyObject *func, PyObject *const *args, Py_ssize_t nargs,
                   const char *name)
{
    if (check_args(nargs, 3, name) < 0) {
        return NULL;
    }
    PyObject *code = args[0];
    if (!PyCode_Check(code) || !(((PyCodeObject *)code)->co_flags & AWAITER_FLAGS)) {
        Py_RETURN_NONE;
    }
    PyObject *res = PyObject_Vectorcall(func, args, 3, NULL);
    if (res == NULL) {
        report_error(self);
        Py_RETURN_NONE;
    }
    return res;
}

static PyObject *
switches_on_throw(Switches *self, PyObject *const *args, Py_ssize_t nargs)
{
    return forward_if_awaiter(self, self->on_throw, args, nargs, "on_throw");
}

static PyObject *
switches_on_unwind(Switches *self, PyObject *const *args, Py_ssize_t nargs)
{
    return forward_if_awaiter(self, self->on_unwind, args, nargs, "on_unwind");
}

static int
switches_traverse(Switches *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->state_type);
    Py_VISIT(self->by_frame);
    Py_VISIT(self->codes);
    Py_VISIT(self->disable);
    Py_VISIT(self->unawaited_code);
    Py_VISIT(self->on_start);
    Py_VISIT(self->yielded);
    Py_VISIT(self->resumed);
    Py_VISIT(self->on_throw);
    Py_VISIT(self->on_unwind);
    Py_VISIT(self->error);
    Py_VISIT(self->cr_await);
    for (size_t i = 0; i < ALLOWED_SLOTS; i++) {
        Py_VISIT(self->allowed[i]);
    }
    return 0;
}

static int
switches_clear(Switches *self)
{
    Py_CLEAR(self->state_type);
    Py_CLEAR(self->by_frame);
    Py_CLEAR(self->codes);
    Py_CLEAR(self->disable);
    Py_CLEAR(self->unawaited_code);
    Py_CLEAR(self->on_start);
    Py_CLEAR(self->yielded);
    Py_CLEAR(self->resumed);
    Py_CLEAR(self->on_throw);
    Py_CLEAR(self->on_unwind);
    Py_CLEAR(self->error);
    Py_CLEAR(self->cr_await);
    for (size_t i = 0; i < ALLOWED_SLOTS; i++) {
        Py_CLEAR(self->allowed[i]);
    }
    return 0;
}

static void
switches_dealloc(Switches *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    switches_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
switches_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"state_type", "by_frame", "codes", "disable", "unawaited_code",
                             "on_start", "yielded", "resumed", "on_throw", "on_unwind",
                             "error", "slow_step_ns", "slow_await_ns", "log_all", "send",
                             NULL};
    PyObject *state_type, *by_frame, *codes, *disable, *unawaited_code, *on_start, *yielded,
        *resumed, *on_throw, *on_unwind, *error;
    long long slow_step_ns, slow_await_ns;
    int log_all, send;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "$O!O!O!OOOOOOOOLLpi:Switches", kwlist,
                                     &PyType_Type, &state_type, &PyDict_Type, &by_frame,
                                     &PyDict_Type, &codes, &disable, &unawaited_code,
                                     &on_start, &yielded, &resumed, &on_throw, &on_unwind,
                                     &error, &slow_step_ns, &slow_await_ns, &log_all, &send)) {
        return NULL;
    }
    if (send < 0 || send > 255) {
        PyErr_SetString(PyExc_ValueError, "send must be an opcode (0-255)");
        return NULL;
    }
    /* The callbacks write the SwitchState fields of every state they find: a state type
     * with another layout would be memory corruption, so it is refused here, once. */
    PyObject *module = PyType_GetModule(type);
    if (module == NULL) {
        return NULL;
    }
    PyObject *base = PyObject_GetAttrString(module, "SwitchState");
    if (base == NULL) {
        return NULL;
    }
    int fits = PyType_Check(base) &&
               PyType_IsSubtype((PyTypeObject *)state_type, (PyTypeObject *)base);
    Py_DECREF(base);
    if (!fits) {
        PyErr_SetString(PyExc_TypeError, "state_type must be a subclass of SwitchState");
        return NULL;
    }
    PyObject *name = PyUnicode_InternFromString("cr_await");
    if (name == NULL) {
        return NULL;
    }
    Switches *self = (Switches *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(name);
        return NULL;
    }
    self->state_type = (PyTypeObject *)Py_NewRef(state_type);
    self->by_frame = Py_NewRef(by_frame);
    self->codes = Py_NewRef(codes);
    self->disable = Py_NewRef(disable);
    self->unawaited_code = Py_NewRef(unawaited_code);
    self->on_start = Py_NewRef(on_start);
    self->yielded = Py_NewRef(yielded);
    self->resumed = Py_NewRef(resumed);
    self->on_throw = Py_NewRef(on_throw);
    self->on_unwind = Py_NewRef(on_unwind);
    self->error = Py_NewRef(error);
    self->cr_await = name;
    self->slow_step_ns = slow_step_ns;
    self->slow_await_ns = slow_await_ns;
    self->log_all = log_all;
    self->send = send;
    return (PyObject *)self;
}

static PyObject *
switches_set_unawaited_code(Switches *self, PyObject *code)
{
    Py_SETREF(self->unawaited_code, Py_NewRef(code));
    Py_RETURN_NONE;
}

static PyMethodDef switches_methods[] = {
    {"on_start", (PyCFunction)(void (*)(void))switches_on_start, METH_FASTCALL,
     "PY_START(code, offset)."},
    {"on_yield", (PyCFunction)(void (*)(void))switches_on_yield, METH_FASTCALL,
     "PY_YIELD(code, offset, value) of a task's root."},
    {"on_resume", (PyCFunction)(void (*)(void))switches_on_resume, METH_FASTCALL,
     "PY_RESUME(code, offset) of a task's root."},
    {"on_throw", (PyCFunction)(void (*)(void))switches_on_throw, METH_FASTCALL,
     "PY_THROW(code, offset, exc)."},
    {"on_unwind", (PyCFunction)(void (*)(void))switches_on_unwind, METH_FASTCALL,
     "PY_UNWIND(code, offset, exc)."},
    {"set_unawaited_code", (PyCFunction)switches_set_unawaited_code, METH_O,
     "The code object of Python's never-awaited hook (its PY_START is never disabled)."},
    {NULL},
};

static PyType_Slot switches_slots[] = {
    {Py_tp_doc, "The sys.monitoring callbacks of a capture, in C."},
    {Py_tp_new, switches_new},
    {Py_tp_traverse, switches_traverse},
    {Py_tp_clear, switches_clear},
    {Py_tp_dealloc, switches_dealloc},
    {Py_tp_methods, switches_methods},
    {0, NULL},
};

static PyType_Spec switches_spec = {
    .name = "coroscope.capture._core.Switches",
    .basicsize = sizeof(Switches),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = switches_slots,
};

/* ------------------------------------------------------------------------------------ */

static int
core_exec(PyObject *module)
{
    find_coro_await_getter();
    PyObject *state_type = PyType_FromModuleAndSpec(module, &state_spec, NULL);
    if (state_type == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(module, "SwitchState", state_type);
    Py_DECREF(state_type);
    if (rc < 0) {
        return -1;
    }
    PyObject *switches_type = PyType_FromModuleAndSpec(module, &switches_spec, NULL);
    if (switches_type == NULL) {
        return -1;
    }
    rc = PyModule_AddObjectRef(module, "Switches", switches_type);
    Py_DECREF(switches_type);
    return rc;
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "coroscope.capture._core",
    .m_doc = "coroscope's native capture core: the per-switch sys.monitoring callbacks.",
    .m_size = 0,
    .m_slots = core_slots,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
