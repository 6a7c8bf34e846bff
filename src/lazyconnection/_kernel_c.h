/* The compiled kernel's C helpers (_kernel_c.pyx): what Cython would otherwise do slower. */

#ifndef LAZYCONNECTION_KERNEL_C_H
#define LAZYCONNECTION_KERNEL_C_H

#include <Python.h>
#include <structmember.h>  /* PyMemberDef, before 3.12 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

/* A callable's vectorcall, read from it as PyObject_Vectorcall reads it, inline: NULL if it
   has none. */
static inline vectorcallfunc lazyconnection_vectorcall_of(PyObject *callable) {
    PyTypeObject *type = Py_TYPE(callable);
    if (!PyType_HasFeature(type, Py_TPFLAGS_HAVE_VECTORCALL)) return NULL;
    vectorcallfunc vectorcall;
    memcpy(&vectorcall, (char *)callable + type->tp_vectorcall_offset, sizeof(vectorcall));
    return vectorcall;
}

/* list.pop() frees a list's storage when it empties, and the next append allocates it
   again: at depth 1 that is every `with`. This pop keeps the capacity. */
static PyObject *lazyconnection_pop(PyObject *list) {
    Py_ssize_t last = PyList_GET_SIZE(list) - 1;
    if (last < 0) {  /* emptied by another thread: only an exit from another context races */
        PyErr_SetString(PyExc_IndexError, "pop from empty list");
        return NULL;
    }
    PyObject *item = PyList_GET_ITEM(list, last);  /* the list's reference, now ours */
    PyList_SET_ITEM(list, last, NULL);
    Py_SET_SIZE(list, last);
    return item;
}

/* stack.append(item), with no call while the stack still has the capacity that
   lazyconnection_pop kept: at depth 1 that is every `with`. */
static inline int lazyconnection_append(PyObject *list, PyObject *item) {
    Py_ssize_t size = PyList_GET_SIZE(list);
    if (((PyListObject *)list)->allocated > size) {
        Py_INCREF(item);
        PyList_SET_ITEM(list, size, item);
        Py_SET_SIZE(list, size + 1);
        return 0;
    }
    return PyList_Append(list, item);
}

/* Removes item, found by identity from the end, from a list whose order does not matter:
   the last item takes its place, and the capacity is kept. Nothing if it is not there. */
static void lazyconnection_remove(PyObject *list, PyObject *item) {
    Py_ssize_t last = PyList_GET_SIZE(list) - 1;
    for (Py_ssize_t i = last; i >= 0; i--) {
        if (PyList_GET_ITEM(list, i) == item) {
            PyList_SET_ITEM(list, i, PyList_GET_ITEM(list, last));
            PyList_SET_ITEM(list, last, NULL);
            Py_SET_SIZE(list, last);
            Py_DECREF(item);  /* the list's reference: the caller holds another */
            return;
        }
    }
}

/* factory(*args), the tuple kept from one call to the next, so that no call makes one: its
   items to a vectorcall (a function), or the tuple itself to tp_call (a class such as
   socket.socket, whose tp_call takes a tuple: the generic call would build one each time). */
static inline PyObject *lazyconnection_call_args(PyObject *factory, PyObject *args) {
    vectorcallfunc vectorcall = lazyconnection_vectorcall_of(factory);
    if (vectorcall != NULL) {
        return vectorcall(factory, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args), NULL);
    }
    ternaryfunc call = Py_TYPE(factory)->tp_call;
    if (call == NULL) return PyObject_Call(factory, args, NULL);  /* raises the TypeError */
    if (Py_EnterRecursiveCall(" while calling a Python object")) return NULL;
    PyObject *result = call(factory, args, NULL);
    Py_LeaveRecursiveCall();
    if (result == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_SystemError, "NULL result without error in PyObject_Call");
    }
    return result;
}

/* The current thread state, the GIL held. From 3.12 PyThreadState_Get() is a call that reads
   a thread-local variable and checks it; the unchecked getter skips the check. */
#if PY_VERSION_HEX >= 0x030D0000
#define lazyconnection_tstate() PyThreadState_GetUnchecked()
#elif PY_VERSION_HEX >= 0x030C0000
#define lazyconnection_tstate() _PyThreadState_UncheckedGet()
#else
#define lazyconnection_tstate() PyThreadState_Get()
#endif

/* A socket's connect and close called as the interpreter's specialised bytecode calls
   them: the function found on the socket's exact type is kept with the type's version
   tag, which changes whenever the type or a base is modified, and called with the socket
   first. Types whose instances have a __dict__, attributes other than plain functions and
   method descriptors, and types without a valid tag take the generic call. */
typedef struct {
    const char *name;
    PyObject *interned;  /* the name, made on first use */
    PyTypeObject *type;  /* not a reference: the version tag, unique, rules out reuse */
    unsigned int version;
    PyObject *function;
} lazyconnection_method;

static lazyconnection_method
    lazyconnection_connect_method = {"connect"},
    lazyconnection_close_method = {"close"},
    lazyconnection_fileno_method = {"fileno"},
    lazyconnection_gettimeout_method = {"gettimeout"},
    lazyconnection_settimeout_method = {"settimeout"};

static int lazyconnection_valid_tag(PyTypeObject *type) {
#if PY_VERSION_HEX < 0x030D0000
    /* Up to 3.12 this flag says whether the tag is valid; 3.13 no longer sets it, and a
       modified type's tag is 0 there. */
    if (!(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) return 0;
#endif
    return type->tp_version_tag != 0;
}

static PyObject *lazyconnection_call(
    lazyconnection_method *method, PyObject *const *args, size_t nargs
) {
    PyTypeObject *type = Py_TYPE(args[0]);
    if (method->interned == NULL
            && (method->interned = PyUnicode_InternFromString(method->name)) == NULL) {
        return NULL;
    }
    if (type != method->type || type->tp_version_tag != method->version
            || !lazyconnection_valid_tag(type)) {
        PyObject *found = _PyType_Lookup(type, method->interned);  /* borrowed */
        if (found == NULL || type->tp_dictoffset != 0 || !lazyconnection_valid_tag(type)
                || !(PyFunction_Check(found) || Py_IS_TYPE(found, &PyMethodDescr_Type))) {
            return PyObject_VectorcallMethod(method->interned, (PyObject **)args, nargs, NULL);
        }
        Py_INCREF(found);
        Py_XSETREF(method->function, found);
        method->type = type;
        method->version = type->tp_version_tag;
    }
    /* Straight to the function's vectorcall, as the interpreter's specialised calls go: not
       through PyObject_Vectorcall, which from 3.12 reads the thread state (a thread-local
       variable, in a call) for a check of the result made again by the caller's NULL test. */
    vectorcallfunc vectorcall = lazyconnection_vectorcall_of(method->function);
    if (vectorcall == NULL) return PyObject_Vectorcall(method->function, args, nargs, NULL);
    return vectorcall(method->function, args, nargs, NULL);
}

static PyObject *lazyconnection_sock_close(PyObject *sock) {
    return lazyconnection_call(&lazyconnection_close_method, &sock, 1);
}

/* The start of CPython's socket object (Modules/socketmodule.h, the same from 3.9 to 3.13):
   reading its descriptor and timeout costs no call. Used only once lazyconnection_check_layout
   has found these fields where they are said to be; until then, and for sockets of other
   types, fileno() and gettimeout() are called. */
typedef struct {
    PyObject_HEAD
    int sock_fd;  /* -1 once closed */
    int sock_family;
    int sock_type;
    int sock_proto;
    PyObject *(*errorhandler)(void);
    int64_t sock_timeout;  /* nanoseconds; negative: blocking without timeout; 0: non-blocking */
} lazyconnection_socket_layout;

/* socket.socket, once the layout is checked. Only sockets of exactly this type are read:
   a subclass may override fileno() or gettimeout(), which are then called. */
static PyTypeObject *lazyconnection_socket_type = NULL;

/* socket.socket's _closed and _io_refs are slots: member descriptors that read an object
   pointer at an offset. Found on the checked type, they are read there as the descriptor
   reads them, while the type's version tag says that nothing on it has changed since. */
#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX 16  /* structmember.h's T_OBJECT_EX, before 3.12 */
#endif
static Py_ssize_t lazyconnection_closed_offset = -1, lazyconnection_files_offset = -1;
static unsigned int lazyconnection_members_version = 0;

static Py_ssize_t lazyconnection_member_offset(PyTypeObject *type, const char *name) {
    PyObject *key = PyUnicode_InternFromString(name);
    if (key == NULL) {
        PyErr_Clear();
        return -1;
    }
    PyObject *found = _PyType_Lookup(type, key);  /* borrowed */
    Py_DECREF(key);
    if (found == NULL || !Py_IS_TYPE(found, &PyMemberDescr_Type)) return -1;
    PyMemberDef *member = ((PyMemberDescrObject *)found)->d_member;
    return member->type == Py_T_OBJECT_EX ? member->offset : -1;
}

/* Whether `probe` (a new socket.socket of the given family and type, its timeout set to
   `timeout_ns`) has its fields where the layout says; if so, use the layout from now on. */
static int lazyconnection_check_layout(
    PyObject *probe, int family, int type, long long timeout_ns
) {
    lazyconnection_socket_layout *fields = (lazyconnection_socket_layout *)probe;
    PyObject *fileno = PyObject_CallMethod(probe, "fileno", NULL);
    if (fileno == NULL) return -1;
    long fd = PyLong_AsLong(fileno);
    Py_DECREF(fileno);
    if (fd == -1 && PyErr_Occurred()) return -1;
    if (Py_TYPE(probe)->tp_basicsize >= (Py_ssize_t)sizeof(lazyconnection_socket_layout)
            && fields->sock_fd == fd && fields->sock_family == family
            && fields->sock_type == type && fields->sock_timeout == timeout_ns) {
        lazyconnection_socket_type = Py_TYPE(probe);
        lazyconnection_closed_offset = lazyconnection_member_offset(Py_TYPE(probe), "_closed");
        lazyconnection_files_offset = lazyconnection_member_offset(Py_TYPE(probe), "_io_refs");
        lazyconnection_members_version = Py_TYPE(probe)->tp_version_tag;
    }
    return 0;
}

static int lazyconnection_layout_checked(void) {
    return lazyconnection_socket_type != NULL;
}

static int lazyconnection_has_layout(PyObject *sock) {
    return Py_TYPE(sock) == lazyconnection_socket_type;
}

/* The socket's descriptor, or -1 if it is closed or has none: no Python exception leaves. */
static long lazyconnection_fileno(PyObject *sock) {
    if (lazyconnection_has_layout(sock)) {
        return ((lazyconnection_socket_layout *)sock)->sock_fd;
    }
    PyObject *result = lazyconnection_call(&lazyconnection_fileno_method, &sock, 1);
    if (result == NULL) {
        PyErr_Clear();
        return -1;
    }
    long fd = PyLong_AsLong(result);
    Py_DECREF(result);
    if (fd < 0) PyErr_Clear();
    return fd < 0 ? -1 : fd;
}

/* Whether an idle socket is unusable: closed, or readable without a request (end of
   stream, a reset, or bytes nobody asked for). One poll() with no wait, and no Python
   exception on the way: a fileno() that fails says the socket is unusable too. A signal
   that interrupts the poll says nothing about the socket: the poll is made again, as
   PEP 475 has Python's own calls do (with no wait it cannot go on for long), and the
   signal's handler runs once the interpreter next checks for signals. */
static int lazyconnection_unusable(PyObject *sock) {
    long fd = lazyconnection_fileno(sock);
    if (fd < 0) return 1;
    struct pollfd check = {(int)fd, POLLIN, 0};
    int events;
    do {
        events = poll(&check, 1, 0);
    } while (events < 0 && errno == EINTR);
    /* Readable, hung up or not a descriptor; or a poll that failed otherwise (no memory),
       which cannot vouch for the socket: not to be handed out. */
    return events != 0;
}

/* A socket.socket attribute read as a truth value: 1, 0, -1 if it has no such attribute,
   or 2 if it could not be read as one. No Python exception leaves. */
static int lazyconnection_flag(PyObject *sock, PyObject **name, const char *text) {
    if (*name == NULL && (*name = PyUnicode_InternFromString(text)) == NULL) {
        PyErr_Clear();
        return 2;
    }
    PyObject *value = PyObject_GetAttr(sock, *name);
    if (value == NULL) {
        PyErr_Clear();
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    if (truth < 0) {
        PyErr_Clear();
        return 2;
    }
    return truth;
}

/* Whether the socket may be kept for another caller: still open (the body may have closed
   it), and with no file of its makefile() open, which would read the next caller's replies.
   A socket.socket closed while such a file is open keeps its descriptor until the file
   closes too: its _closed says so, and _io_refs counts the files. Sockets of other types
   have only their descriptor to go by. No Python exception leaves. */
static int lazyconnection_is_open(PyObject *sock) {
    static PyObject *closed_name = NULL, *files_name = NULL;
    if (lazyconnection_fileno(sock) < 0) return 0;
    PyTypeObject *type = Py_TYPE(sock);
    if (type == lazyconnection_socket_type && lazyconnection_closed_offset >= 0
            && lazyconnection_files_offset >= 0 && lazyconnection_valid_tag(type)
            && type->tp_version_tag == lazyconnection_members_version) {
        PyObject *closed = *(PyObject **)((char *)sock + lazyconnection_closed_offset);
        PyObject *files = *(PyObject **)((char *)sock + lazyconnection_files_offset);
        if (closed == Py_True) return 0;
        if (closed == Py_False && files != NULL && PyLong_CheckExact(files)) {
            return PyObject_IsTrue(files) == 0;
        }
    }  /* anything else as the attributes say when asked */
    int closed = lazyconnection_flag(sock, &closed_name, "_closed");
    if (closed == -1) return 1;  /* not a socket.socket */
    if (closed != 0) return 0;
    return lazyconnection_flag(sock, &files_name, "_io_refs") <= 0;
}

/* Give the socket this timeout (None, or seconds as a float; 0.0 is non-blocking) unless it
   has it already. */
static int lazyconnection_ensure_timeout(PyObject *sock, PyObject *timeout) {
    if (lazyconnection_has_layout(sock)) {
        int64_t have = ((lazyconnection_socket_layout *)sock)->sock_timeout;
        if (timeout == Py_None ? have < 0
                : PyFloat_CheckExact(timeout)
                  && (double)have == PyFloat_AS_DOUBLE(timeout) * 1e9) {
            return 0;
        }
    } else {
        PyObject *have = lazyconnection_call(&lazyconnection_gettimeout_method, &sock, 1);
        if (have == NULL) return -1;
        int same = PyObject_RichCompareBool(have, timeout, Py_EQ);
        Py_DECREF(have);
        if (same != 0) return same < 0 ? -1 : 0;
    }
    PyObject *args[2] = {sock, timeout};
    PyObject *done = lazyconnection_call(&lazyconnection_settimeout_method, args, 2);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

/* Seconds on the clock time.monotonic() reads. */
static double lazyconnection_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec * 1e-9;
}

/* With an error set: close the socket and return -1, the error still set, as
   `except BaseException: sock.close(); raise` does, without the cost of saving the exception
   state on the way in. An error of close leaves instead, the first as its context. */
static int lazyconnection_close_after_error(PyObject *sock) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL) PyException_SetTraceback(value, traceback);
    PyObject *closed = lazyconnection_sock_close(sock);
    if (closed == NULL) {
        PyObject *close_type, *close_value, *close_traceback;
        PyErr_Fetch(&close_type, &close_value, &close_traceback);
        PyErr_NormalizeException(&close_type, &close_value, &close_traceback);
        PyException_SetContext(close_value, value);  /* steals value */
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        PyErr_Restore(close_type, close_value, close_traceback);
        return -1;
    }
    Py_DECREF(closed);
    PyErr_Restore(type, value, traceback);
    return -1;
}

/* sock.connect(address), closing the socket before an error leaves. */
static int lazyconnection_connect_or_close(PyObject *sock, PyObject *address) {
    PyObject *args[2] = {sock, address};
    PyObject *result = lazyconnection_call(&lazyconnection_connect_method, args, 2);
    if (result == NULL) return lazyconnection_close_after_error(sock);
    Py_DECREF(result);
    return 0;
}

/* Give the socket this timeout (None, or seconds as a float; 0.0 is non-blocking) unless it
   has it already; close it before an error leaves. */
static int lazyconnection_ensure_timeout_or_close(PyObject *sock, PyObject *timeout) {
    if (lazyconnection_ensure_timeout(sock, timeout) < 0) {
        return lazyconnection_close_after_error(sock);
    }
    return 0;
}


/* StopIteration(value) set as the error, the way a coroutine's return sets it, for a
   __next__ to leave with: its caller (the interpreter's await) takes the value from it. */
static int lazyconnection_stop_with(PyObject *value) {
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (stop == NULL) return -1;
    Py_INCREF(PyExc_StopIteration);
    PyErr_Restore(PyExc_StopIteration, stop, NULL);
    return 0;
}


/* A send to a coroutine, as PyIter_Send makes it: 1 with what it yielded, 0 with what it
   returned (in result), -1 with its error set. 3.9 has no PyIter_Send: there, _PyGen_Send
   for a coroutine, else its send method. */
#if PY_VERSION_HEX >= 0x030A0000
static inline int lazyconnection_send(PyObject *coroutine, PyObject *value, PyObject **result) {
    return (int)PyIter_Send(coroutine, value, result);
}
#else
static PyObject *lazyconnection_send_name = NULL;

static int lazyconnection_send(PyObject *coroutine, PyObject *value, PyObject **result) {
    if (PyCoro_CheckExact(coroutine)) {  /* the loop's sock_connect: no method looked up */
        *result = _PyGen_Send((PyGenObject *)coroutine, value);
    } else if (value == Py_None && PyIter_Check(coroutine)) {  /* as PyIter_Send, and await */
        *result = Py_TYPE(coroutine)->tp_iternext(coroutine);
    } else {
        if (lazyconnection_send_name == NULL) {
            lazyconnection_send_name = PyUnicode_InternFromString("send");
            if (lazyconnection_send_name == NULL) return -1;
        }
        *result = PyObject_CallMethodOneArg(coroutine, lazyconnection_send_name, value);
    }
    if (*result != NULL) return 1;
    return _PyGen_FetchStopIterationValue(result) == 0 ? 0 : -1;
}
#endif

typedef int (*lazyconnection_sendfunc)(PyObject *, PyObject *, PyObject **);

/* Gives a type whose __await__ returns the object itself the send slot (am_send) that an
   await's send goes through on 3.10 and 3.11; before 3.10 there is none. */
static void lazyconnection_set_send(PyTypeObject *type, lazyconnection_sendfunc send) {
#if PY_VERSION_HEX >= 0x030A0000
    type->tp_as_async->am_send = (sendfunc)send;
    PyType_Modified(type);
#else
    (void)type;
    (void)send;
#endif
}


#endif
