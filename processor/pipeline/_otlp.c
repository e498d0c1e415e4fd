/* A one-pass reader of OTLP ExportTraceServiceRequest bytes for the processor's hot loop.
 *
 * upb parses a request quickly, but reading it from Python creates a wrapper object per
 * attribute and a string per key, which is most of the normaliser's time. This walks the wire
 * format once and hands back, per span, only what the normaliser reads: its ids, name, times,
 * status code and the values of the attribute keys it was configured with, as plain Python
 * values. It never decides anything about a request it is unsure of: whenever the bytes are
 * malformed or use a form it does not handle (a singular message field given twice, a group,
 * a field of the schema it does not read, nesting deeper than upb allows), decode() returns
 * None and the caller parses the request with upb, so what is accepted and how it reads stays
 * upb's. Every string field of the schema is checked for valid UTF-8 as upb checks it.
 *
 *   configure(span_keys, resource_keys, empty, other)  once: keys -> slot by position
 *   decode(body) -> (resources, scopes, spans) | None
 *     resources: one list [values of resource_keys] per ResourceSpans (None where absent)
 *     scopes:    one scope name per ScopeSpans
 *     spans:     one tuple per span:
 *                (vals | None, trace_id, span_id, parent_span_id, name, start_ns, end_ns,
 *                 status_code, resource_index, scope_index, offset, length)
 *                vals is a list of len(span_keys) plain values (None where absent);
 *                offset/length locate the span's own bytes in body.
 * Plain values: str, bool, int, float; a tuple of plain values for an array (nested arrays,
 * lists and bytes inside it as `other`); `other` for a key-value list or bytes; `empty` for a
 * value with nothing set.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define OK 0
#define UNSURE 1 /* fall back to upb */
#define PYERR 2  /* a Python exception is set */
#define MAX_DEPTH 64
#define MAX_KEY_LEN 128

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

/* a field's bytes for Py_BuildValue: never a NULL pointer (that would give None) */
#define TEXT(reader) ((reader).p ? (const char *)(reader).p : "")
#define LEN(reader) ((Py_ssize_t)((reader).end - (reader).p))

typedef struct {
    const char *text;
    Py_ssize_t len;
    int slot;
} Key;

typedef struct {
    Key *keys;
    int count;
    int first[MAX_KEY_LEN + 2]; /* keys sorted by length: first index of each length */
} KeyTable;

static KeyTable span_table, resource_table;
static PyObject *span_key_objects, *resource_key_objects; /* keep the key strings alive */
static PyObject *EMPTY, *OTHER;

static inline int read_varint(Reader *r, uint64_t *out) {
    if (r->p < r->end && *r->p < 0x80) { /* the common case: one byte */
        *out = *r->p++;
        return OK;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return UNSURE;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return UNSURE;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return OK;
        }
    }
    return UNSURE;
}

static inline int read_tag(Reader *r, uint32_t *field, int *wire) {
    uint64_t key;
    if (read_varint(r, &key) != OK || key > 0xffffffffu) return UNSURE;
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    return *field == 0 ? UNSURE : OK;
}

static inline int read_bytes(Reader *r, Reader *out) {
    uint64_t n;
    if (read_varint(r, &n) != OK || n > (uint64_t)(r->end - r->p)) return UNSURE;
    out->p = r->p;
    out->end = r->p + n;
    r->p += n;
    return OK;
}

static int read_fixed64(Reader *r, uint64_t *out) {
    if (r->end - r->p < 8) return UNSURE;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += 8;
    *out = v;
    return OK;
}

static int skip(Reader *r, int wire) {
    uint64_t v;
    Reader sub;
    switch (wire) {
        case 0: return read_varint(r, &v);
        case 1:
            if (r->end - r->p < 8) return UNSURE;
            r->p += 8;
            return OK;
        case 2: return read_bytes(r, &sub);
        case 5:
            if (r->end - r->p < 4) return UNSURE;
            r->p += 4;
            return OK;
        default: return UNSURE; /* groups and invalid wire types: upb decides */
    }
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as upb checks proto3 strings. */
static int valid_utf8(const uint8_t *s, const uint8_t *end) {
    while (s < end) {
        while (end - s >= 8) { /* ASCII eight bytes at a time */
            uint64_t word;
            memcpy(&word, s, 8);
            if (word & 0x8080808080808080ull) break;
            s += 8;
        }
        if (s >= end) break;
        uint8_t c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        Py_ssize_t left = end - s;
        if (c >= 0xc2 && c <= 0xdf) {
            if (left < 2 || (s[1] & 0xc0) != 0x80) return 0;
            s += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (left < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
            if (c == 0xe0 && s[1] < 0xa0) return 0;
            if (c == 0xed && s[1] > 0x9f) return 0;
            s += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (left < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
                return 0;
            if (c == 0xf0 && s[1] < 0x90) return 0;
            if (c == 0xf4 && s[1] > 0x8f) return 0;
            s += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static int check_string(Reader *r) {
    Reader s;
    if (read_bytes(r, &s) != OK) return UNSURE;
    return valid_utf8(s.p, s.end) ? OK : UNSURE;
}

static int lookup(const KeyTable *t, const uint8_t *text, Py_ssize_t len) {
    if (len > MAX_KEY_LEN) return -1;
    for (int i = t->first[len]; i < t->first[len + 1]; i++)
        if (memcmp(t->keys[i].text, text, (size_t)len) == 0) return t->keys[i].slot;
    return -1;
}

static int check_keyvalue(Reader *r, int depth);

/* AnyValue: check it all; with out != NULL also build its plain value (shallow: nested
   arrays as `other`). */
static int any_value(Reader r, int depth, PyObject **out, int shallow) {
    if (depth > MAX_DEPTH) return UNSURE;
    int last = 0; /* field number of the oneof member set last */
    int messages = 0, message_kind = 0;
    Reader text = {0}, message = {0}, bytes = {0};
    uint64_t scalar = 0;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (read_tag(&r, &field, &wire) != OK) return UNSURE;
        switch (field) {
            case 1:
                if (wire != 2 || read_bytes(&r, &text) != OK || !valid_utf8(text.p, text.end)) return UNSURE;
                break;
            case 2:
            case 3:
                if (wire != 0 || read_varint(&r, &scalar) != OK) return UNSURE;
                break;
            case 4:
                if (wire != 1 || read_fixed64(&r, &scalar) != OK) return UNSURE;
                break;
            case 5:
            case 6: /* a message member given twice would be merged by upb */
                if (wire != 2 || messages++ || read_bytes(&r, &message) != OK) return UNSURE;
                message_kind = (int)field;
                break;
            case 7:
                if (wire != 2 || read_bytes(&r, &bytes) != OK) return UNSURE;
                break;
            case 8: return UNSURE; /* string_value_strindex: upb reads it */
            default:
                if (skip(&r, wire) != OK) return UNSURE;
                continue;
        }
        last = (int)field;
    }
    PyObject *items = NULL;
    if (messages) { /* checked wholly even when another member was set after it */
        if (out != NULL && !shallow && last == 5) {
            items = PyList_New(0);
            if (items == NULL) return PYERR;
        }
        Reader m = message;
        while (m.p < m.end) {
            uint32_t field;
            int wire;
            Reader item;
            int rc;
            if (read_tag(&m, &field, &wire) != OK) rc = UNSURE;
            else if (field != 1) rc = skip(&m, wire);
            else if (wire != 2 || read_bytes(&m, &item) != OK) rc = UNSURE;
            else if (message_kind == 6) rc = check_keyvalue(&item, depth + 2);
            else {
                PyObject *element = NULL;
                rc = any_value(item, depth + 2, items != NULL ? &element : NULL, 1);
                if (rc == OK && items != NULL) {
                    rc = PyList_Append(items, element) == 0 ? OK : PYERR;
                    Py_DECREF(element);
                }
            }
            if (rc != OK) {
                Py_XDECREF(items);
                return rc;
            }
        }
    }
    if (out == NULL) return OK;
    switch (last) {
        case 0: Py_INCREF(EMPTY); *out = EMPTY; break;
        case 1:
            *out = PyUnicode_DecodeUTF8((const char *)text.p, text.end - text.p, "strict");
            break;
        case 2: *out = PyBool_FromLong(scalar != 0); break;
        case 3: *out = PyLong_FromLongLong((long long)(int64_t)scalar); break;
        case 4: {
            double d;
            memcpy(&d, &scalar, sizeof d);
            *out = PyFloat_FromDouble(d);
            break;
        }
        case 5:
            if (items == NULL) { /* an array inside an array */
                Py_INCREF(OTHER);
                *out = OTHER;
            } else {
                *out = PyList_AsTuple(items);
                Py_DECREF(items);
            }
            break;
        default: Py_INCREF(OTHER); *out = OTHER;
    }
    return *out == NULL ? PYERR : OK;
}

/* KeyValue: its parts, in whatever order they come; a value given twice would be merged. */
static int keyvalue_parts(Reader *kv, Reader *key, Reader *value, int *has_value) {
    Reader r = *kv;
    *has_value = 0;
    key->p = key->end = NULL;
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (read_tag(&r, &field, &wire) != OK) return UNSURE;
        if (field == 1) {
            if (wire != 2 || read_bytes(&r, key) != OK || !valid_utf8(key->p, key->end)) return UNSURE;
        } else if (field == 2) {
            if (wire != 2 || (*has_value)++ || read_bytes(&r, value) != OK) return UNSURE;
        } else if (field == 3) {
            return UNSURE; /* key_strindex */
        } else if (skip(&r, wire) != OK) {
            return UNSURE;
        }
    }
    return OK;
}

static int check_keyvalue(Reader *kv, int depth) {
    Reader key, value;
    int has_value;
    if (depth > MAX_DEPTH) return UNSURE;
    int rc = keyvalue_parts(kv, &key, &value, &has_value);
    if (rc != OK) return rc;
    return has_value ? any_value(value, depth + 1, NULL, 0) : OK;
}

/* One attribute: checked; if its key is in the table, its plain value stored at its slot. */
static int attribute(Reader *kv, const KeyTable *table, PyObject **vals, Py_ssize_t n_slots, int depth) {
    Reader key, value;
    int has_value;
    int rc = keyvalue_parts(kv, &key, &value, &has_value);
    if (rc != OK) return rc;
    int slot = key.p == NULL ? lookup(table, (const uint8_t *)"", 0) : lookup(table, key.p, key.end - key.p);
    if (slot < 0) return has_value ? any_value(value, depth + 1, NULL, 0) : OK;
    PyObject *plain = NULL;
    if (has_value) {
        rc = any_value(value, depth + 1, &plain, 0);
        if (rc != OK) return rc;
    } else {
        Py_INCREF(EMPTY);
        plain = EMPTY;
    }
    if (*vals == NULL) {
        *vals = PyList_New(n_slots);
        if (*vals == NULL) {
            Py_DECREF(plain);
            return PYERR;
        }
        for (Py_ssize_t i = 0; i < n_slots; i++) {
            Py_INCREF(Py_None);
            PyList_SET_ITEM(*vals, i, Py_None);
        }
    }
    PyObject *old = PyList_GET_ITEM(*vals, slot);
    PyList_SET_ITEM(*vals, slot, plain);
    Py_DECREF(old);
    return OK;
}

static int check_attributes_message(Reader r, int attr_field, const int *strings, int depth) {
    /* a message whose field attr_field holds KeyValues, fields in strings[] are strings,
       other wire-valid fields are scalars or bytes (no further checks) */
    while (r.p < r.end) {
        uint32_t field;
        int wire;
        if (read_tag(&r, &field, &wire) != OK) return UNSURE;
        if ((int)field == attr_field) {
            Reader kv;
            if (wire != 2 || read_bytes(&r, &kv) != OK) return UNSURE;
            int rc = check_keyvalue(&kv, depth + 1);
            if (rc != OK) return rc;
            continue;
        }
        int is_string = 0;
        for (const int *s = strings; *s; s++)
            if ((int)field == *s) is_string = 1;
        if (is_string) {
            if (wire != 2 || check_string(&r) != OK) return UNSURE;
        } else if (skip(&r, wire) != OK) {
            return UNSURE;
        }
    }
    return OK;
}

typedef struct {
    PyObject *spans;
    PyObject *body;
    const uint8_t *base;
    Py_ssize_t resource_index, scope_index;
} Out;

static const int EVENT_STRINGS[] = {2, 0};
static const int LINK_STRINGS[] = {3, 0};
static const int SCOPE_STRINGS[] = {1, 2, 0};

static int span(Reader r, Out *o) {
    const uint8_t *start = r.p;
    Reader trace = {0}, sid = {0}, parent = {0}, name = {0};
    uint64_t t0 = 0, t1 = 0, code = 0;
    int statuses = 0;
    PyObject *vals = NULL;
    Py_ssize_t n_slots = PyTuple_GET_SIZE(span_key_objects);
    int rc = OK;
    while (r.p < r.end && rc == OK) {
        uint32_t field;
        int wire;
        Reader sub;
        if (read_tag(&r, &field, &wire) != OK) {
            rc = UNSURE;
            break;
        }
        switch (field) {
            case 1: rc = wire == 2 ? read_bytes(&r, &trace) : UNSURE; break;
            case 2: rc = wire == 2 ? read_bytes(&r, &sid) : UNSURE; break;
            case 4: rc = wire == 2 ? read_bytes(&r, &parent) : UNSURE; break;
            case 3: rc = wire == 2 ? check_string(&r) : UNSURE; break;
            case 5:
                rc = (wire == 2 && read_bytes(&r, &name) == OK && valid_utf8(name.p, name.end)) ? OK : UNSURE;
                break;
            case 7: rc = wire == 1 ? read_fixed64(&r, &t0) : UNSURE; break;
            case 8: rc = wire == 1 ? read_fixed64(&r, &t1) : UNSURE; break;
            case 6:
            case 10:
            case 12:
            case 14: rc = wire == 0 ? skip(&r, 0) : UNSURE; break;
            case 16: rc = wire == 5 ? skip(&r, 5) : UNSURE; break;
            case 9:
                if (wire != 2 || read_bytes(&r, &sub) != OK) rc = UNSURE;
                else rc = attribute(&sub, &span_table, &vals, n_slots, 5);
                break;
            case 11:
                if (wire != 2 || read_bytes(&r, &sub) != OK) rc = UNSURE;
                else rc = check_attributes_message(sub, 3, EVENT_STRINGS, 5);
                break;
            case 13:
                if (wire != 2 || read_bytes(&r, &sub) != OK) rc = UNSURE;
                else rc = check_attributes_message(sub, 4, LINK_STRINGS, 5);
                break;
            case 15:
                if (wire != 2 || statuses++ || read_bytes(&r, &sub) != OK) {
                    rc = UNSURE;
                    break;
                }
                while (sub.p < sub.end && rc == OK) {
                    uint32_t f;
                    int w;
                    if (read_tag(&sub, &f, &w) != OK) rc = UNSURE;
                    else if (f == 2) rc = w == 2 ? check_string(&sub) : UNSURE;
                    else if (f == 3) rc = w == 0 ? read_varint(&sub, &code) : UNSURE;
                    else rc = skip(&sub, w);
                }
                break;
            default: rc = skip(&r, wire);
        }
    }
    if (rc != OK) {
        Py_XDECREF(vals);
        return rc;
    }
    if (vals == NULL) {
        Py_INCREF(Py_None);
        vals = Py_None;
    }
    PyObject *item = PyTuple_New(12);
    if (item == NULL) {
        Py_DECREF(vals);
        return PYERR;
    }
    PyTuple_SET_ITEM(item, 0, vals);
    PyObject *parts[11] = {
        PyBytes_FromStringAndSize(TEXT(trace), LEN(trace)),
        PyBytes_FromStringAndSize(TEXT(sid), LEN(sid)),
        PyBytes_FromStringAndSize(TEXT(parent), LEN(parent)),
        PyUnicode_DecodeUTF8(TEXT(name), LEN(name), "strict"),
        PyLong_FromUnsignedLongLong(t0),
        PyLong_FromUnsignedLongLong(t1),
        PyLong_FromLong((long)(int32_t)(uint32_t)code),
        PyLong_FromSsize_t(o->resource_index),
        PyLong_FromSsize_t(o->scope_index),
        PyLong_FromSsize_t((Py_ssize_t)(start - o->base)),
        PyLong_FromSsize_t((Py_ssize_t)(r.end - start)),
    };
    int failed = 0;
    for (int i = 0; i < 11; i++) {
        if (parts[i] == NULL) failed = 1;
        PyTuple_SET_ITEM(item, i + 1, parts[i] != NULL ? parts[i] : Py_NewRef(Py_None));
    }
    if (failed) {
        Py_DECREF(item);
        return PYERR;
    }
    if (item == NULL) return PYERR;
    rc = PyList_Append(o->spans, item) == 0 ? OK : PYERR;
    Py_DECREF(item);
    return rc;
}

static PyObject *decode(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (span_key_objects == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) return NULL;
    PyObject *resources = PyList_New(0), *scopes = PyList_New(0), *spans = PyList_New(0);
    PyObject *result = NULL;
    int rc = (resources && scopes && spans) ? OK : PYERR;
    Out o = {spans, arg, (const uint8_t *)view.buf, -1, -1};
    Reader req = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    Py_ssize_t n_res = PyTuple_GET_SIZE(resource_key_objects);
    while (rc == OK && req.p < req.end) {
        uint32_t field;
        int wire;
        Reader rs;
        if (read_tag(&req, &field, &wire) != OK) {
            rc = UNSURE;
            break;
        }
        if (field != 1) {
            rc = skip(&req, wire);
            continue;
        }
        if (wire != 2 || read_bytes(&req, &rs) != OK) {
            rc = UNSURE;
            break;
        }
        PyObject *labels = NULL; /* values of the resource keys */
        o.resource_index = PyList_GET_SIZE(resources);
        int resources_seen = 0;
        while (rc == OK && rs.p < rs.end) {
            Reader sub;
            if (read_tag(&rs, &field, &wire) != OK) {
                rc = UNSURE;
                break;
            }
            if (field == 3) {
                rc = wire == 2 ? check_string(&rs) : UNSURE;
            } else if (field == 1) {
                if (wire != 2 || resources_seen++ || read_bytes(&rs, &sub) != OK) {
                    rc = UNSURE;
                    break;
                }
                while (rc == OK && sub.p < sub.end) {
                    uint32_t f;
                    int w;
                    Reader kv;
                    if (read_tag(&sub, &f, &w) != OK) rc = UNSURE;
                    else if (f == 1) {
                        if (w != 2 || read_bytes(&sub, &kv) != OK) rc = UNSURE;
                        else rc = attribute(&kv, &resource_table, &labels, n_res, 3);
                    } else if (f == 2) rc = w == 0 ? skip(&sub, 0) : UNSURE;
                    else if (f == 3) rc = UNSURE; /* entity_refs: upb reads them */
                    else rc = skip(&sub, w);
                }
            } else if (field == 2) {
                if (wire != 2 || read_bytes(&rs, &sub) != OK) {
                    rc = UNSURE;
                    break;
                }
                o.scope_index = PyList_GET_SIZE(scopes);
                Reader scope_name = {0};
                int scopes_seen = 0;
                while (rc == OK && sub.p < sub.end) {
                    uint32_t f;
                    int w;
                    Reader part;
                    if (read_tag(&sub, &f, &w) != OK) rc = UNSURE;
                    else if (f == 1) {
                        if (w != 2 || scopes_seen++ || read_bytes(&sub, &part) != OK) {
                            rc = UNSURE;
                            break;
                        }
                        rc = check_attributes_message(part, 3, SCOPE_STRINGS, 3);
                        Reader pr = part; /* the name: last field 1 of the scope */
                        while (rc == OK && pr.p < pr.end) {
                            uint32_t g;
                            int x;
                            if (read_tag(&pr, &g, &x) != OK) rc = UNSURE;
                            else if (g == 1 && x == 2) rc = read_bytes(&pr, &scope_name);
                            else rc = skip(&pr, x);
                        }
                    } else if (f == 2) {
                        if (w != 2 || read_bytes(&sub, &part) != OK) rc = UNSURE;
                        else rc = span(part, &o);
                    } else if (f == 3) rc = w == 2 ? check_string(&sub) : UNSURE;
                    else rc = skip(&sub, w);
                }
                if (rc == OK) {
                    PyObject *s = PyUnicode_DecodeUTF8(
                        scope_name.p ? (const char *)scope_name.p : "", scope_name.p ? scope_name.end - scope_name.p : 0,
                        "strict");
                    if (s == NULL || PyList_Append(scopes, s) != 0) rc = PYERR;
                    Py_XDECREF(s);
                }
            } else {
                rc = skip(&rs, wire);
            }
        }
        if (rc == OK) {
            if (labels == NULL) {
                Py_INCREF(Py_None);
                labels = Py_None;
            }
            if (PyList_Append(resources, labels) != 0) rc = PYERR;
        }
        Py_XDECREF(labels);
    }
    if (rc == OK) result = PyTuple_Pack(3, resources, scopes, spans);
    else if (rc == UNSURE) {
        Py_INCREF(Py_None);
        result = Py_None;
    }
    Py_XDECREF(resources);
    Py_XDECREF(scopes);
    Py_XDECREF(spans);
    PyBuffer_Release(&view);
    return result;
}

static int build_table(PyObject *keys, KeyTable *t, PyObject **keep) {
    if (!PyTuple_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "keys must be a tuple of str");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(keys);
    Key *table = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Key));
    if (table == NULL) return -1;
    int count = 0;
    for (Py_ssize_t len = 0; len <= MAX_KEY_LEN; len++) {
        t->first[len] = count;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *k = PyTuple_GET_ITEM(keys, i);
            Py_ssize_t klen;
            const char *text = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &klen) : NULL;
            if (text == NULL) {
                PyMem_Free(table);
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "keys must be a tuple of str");
                return -1;
            }
            if (klen > MAX_KEY_LEN) {
                PyMem_Free(table);
                PyErr_SetString(PyExc_ValueError, "key too long");
                return -1;
            }
            if (klen == len) table[count++] = (Key){text, klen, (int)i};
        }
    }
    t->first[MAX_KEY_LEN + 1] = count;
    PyMem_Free(t->keys);
    t->keys = table;
    t->count = count;
    Py_INCREF(keys);
    Py_XSETREF(*keep, keys);
    return 0;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *span_keys, *resource_keys, *empty, *other;
    if (!PyArg_ParseTuple(args, "OOOO", &span_keys, &resource_keys, &empty, &other)) return NULL;
    if (build_table(span_keys, &span_table, &span_key_objects) != 0) return NULL;
    if (build_table(resource_keys, &resource_table, &resource_key_objects) != 0) return NULL;
    Py_INCREF(empty);
    Py_XSETREF(EMPTY, empty);
    Py_INCREF(other);
    Py_XSETREF(OTHER, other);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "configure(span_keys, resource_keys, empty, other)"},
    {"decode", decode, METH_O, "decode(body) -> (resources, scopes, spans) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_otlp", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__otlp(void) { return PyModule_Create(&module); }
