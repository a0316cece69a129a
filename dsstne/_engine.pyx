# cython: language_level=3, boundscheck=False, wraparound=False
"""Bridge to the C++ engine: contexts (targets), datasets and networks. Private: use dsstne.Network."""

from libc.stdint cimport int32_t, uint32_t, uint64_t
from libcpp cimport bool as cbool
from libcpp.memory cimport shared_ptr
from libcpp.string cimport string
from libcpp.vector cimport vector

import numpy as np

cimport numpy as cnp

from .errors import DataError, DeviceError, NotSupportedError

cnp.import_array()


cdef extern from "_errors.h":
    void dsstne_set_error_types(object, object, object)
    void translate_error "dsstne_translate_error"()

dsstne_set_error_types(DataError, NotSupportedError, DeviceError)


cdef extern from "dsstne/backend.h" namespace "dsstne":
    cdef struct MemoryUsage:
        size_t current
        size_t peak

    cdef enum class MathMode(int32_t):
        Fp32
        Tf32
        Tf32x3

    cdef cppclass Backend:
        string name()
        string description()
        MemoryUsage memory()
        void set_math(MathMode) except +translate_error


cdef extern from "dsstne/context.h" namespace "dsstne":
    cdef cppclass Context:
        shared_ptr[Backend] backend
        uint64_t seed

    shared_ptr[Context] make_context(const string&, uint64_t, const string&) except +translate_error
    int cuda_device_count(const string&, string*) except +translate_error


cdef extern from "dsstne/dataset.h" namespace "dsstne":
    cdef struct DataSetShape:
        string name
        uint32_t attributes
        uint32_t width, height, length
        uint32_t examples, unique_examples

    cdef cppclass DataSet:
        @staticmethod
        shared_ptr[DataSet] sparse(shared_ptr[Backend], DataSetShape, const uint64_t*, const uint64_t*,
                                   const uint32_t*, const float*, uint64_t, const float*,
                                   const uint32_t*) except +translate_error nogil

        @staticmethod
        shared_ptr[DataSet] dense(shared_ptr[Backend], DataSetShape, const float*, const float*,
                                  const uint32_t*) except +translate_error nogil
        uint32_t examples()
        uint32_t stride()


cdef extern from "dsstne/spec.h" namespace "dsstne":
    cdef cppclass LayerSpec:
        LayerSpec()
        string name
        int32_t kind
        uint32_t nx, ny, nz, nw
        cbool sparse, denoising
        vector[string] sources
        vector[string] skips
        string dataset
        int32_t activation
        float relu_slope, elu_alpha, selu_lambda, p_dropout, sparseness_p, sparseness_beta, delta_norm
        cbool batch_norm

    cdef cppclass WeightSpec:
        WeightSpec()
        string input, output
        int32_t init
        float init_scale, bias_init, norm
        cbool shared, transposed
        string source_input, source_output

    cdef cppclass NetworkSpec:
        string name
        vector[LayerSpec] layers
        vector[WeightSpec] weights
        int32_t error_function
        float smce_one_target, smce_zero_target, smce_one_scale, smce_zero_scale
        float delta_boost_one, delta_boost_zero, denoising_p, decay, bn_momentum
        cbool shuffle, tanh_dropout_scale
        uint32_t batch

    cdef cppclass TrainParams:
        int32_t mode
        float alpha, lambda_ "lambda", lambda1, mu, mu1
        cbool clear_velocity, adam_dsstne_step, divergence_brake

    cdef cppclass EpochReport:
        uint32_t epoch
        double error, regularization, seconds

    ctypedef cbool (*EpochCallback)(void*, const EpochReport&) noexcept


cdef extern from "dsstne/network.h" namespace "dsstne":
    cdef cppclass Network:
        Network(shared_ptr[Context], NetworkSpec, vector[shared_ptr[DataSet]]) except +translate_error
        vector[EpochReport] train(uint32_t, const TrainParams&, EpochCallback, void*) except +translate_error nogil
        void predict(const vector[shared_ptr[DataSet]]&, const string&, float*) except +translate_error nogil
        void recommend(const vector[shared_ptr[DataSet]]&, const string&, uint32_t, const shared_ptr[DataSet]&,
                       float*, uint32_t*) except +translate_error nogil
        void get_weights(const string&, const string&, float*, float*) except +translate_error
        void set_weights(const string&, const string&, const float*, const float*) except +translate_error
        uint32_t layer_stride(const string&) except +translate_error
        double batch_gradients(uint32_t) except +translate_error nogil
        void get_gradients(const string&, const string&, float*, float*) except +translate_error
        void clear_gradients() except +translate_error
        void lock_weights(const string&, const string&, cbool) except +translate_error
        cbool weights_locked(const string&, const string&) except +translate_error
        void get_units(const string&, float*) except +translate_error
        void get_deltas(const string&, float*) except +translate_error
        void get_batch_norm(const string&, float*, float*, float*, float*) except +translate_error
        void set_batch_norm(const string&, const float*, const float*, const float*, const float*) \
            except +translate_error
        void get_batch_norm_gradients(const string&, float*, float*) except +translate_error
        void get_batch_norm_state(const string&, int, float*, float*) except +translate_error
        void set_batch_norm_state(const string&, int, const float*, const float*) except +translate_error
        uint64_t epochs_done()
        uint64_t batches_done()
        void set_counters(uint64_t, uint64_t, uint64_t)
        uint64_t optimizer_steps()
        void get_state(const string&, const string&, int, float*, float*) except +translate_error
        void set_state(const string&, const string&, int, const float*, const float*) except +translate_error
        uint32_t batch()


def device_count(str plugin_path):
    """Return (number of usable CUDA devices, reason when 0)."""
    cdef string why
    n = cuda_device_count(plugin_path.encode(), &why)
    return n, why.decode(errors="replace")


cdef class EngineContext:
    """A target (CPU or one CUDA device) with its seed."""

    cdef shared_ptr[Context] ptr
    cdef object __weakref__  # datasets cache their uploads per context without keeping it alive

    def __cinit__(self, str device, uint64_t seed, str plugin_path):
        self.ptr = make_context(device.encode(), seed, plugin_path.encode())

    @property
    def name(self):
        return self.ptr.get().backend.get().name().decode()

    @property
    def description(self):
        return self.ptr.get().backend.get().description().decode()

    @property
    def seed(self):
        return self.ptr.get().seed

    def memory(self):
        cdef MemoryUsage m = self.ptr.get().backend.get().memory()
        return m.current, m.peak

    def set_math(self, str mode):
        cdef MathMode m = {"fp32": MathMode.Fp32, "tf32": MathMode.Tf32, "tf32x3": MathMode.Tf32x3}[mode]
        self.ptr.get().backend.get().set_math(m)


cdef class EngineDataSet:
    """A dataset resident on one target."""

    cdef shared_ptr[DataSet] ptr
    cdef public str name

    @staticmethod
    def sparse(EngineContext ctx, str name, uint32_t attributes, tuple dims, uint32_t examples,
               cnp.ndarray start, cnp.ndarray end, cnp.ndarray index, object value, object weight,
               object indexed):
        cdef EngineDataSet ds = EngineDataSet.__new__(EngineDataSet)
        cdef DataSetShape shape = _shape(name, attributes, dims, examples, start.shape[0])
        cdef cnp.ndarray[cnp.uint64_t, ndim=1] s = np.ascontiguousarray(start, np.uint64)
        cdef cnp.ndarray[cnp.uint64_t, ndim=1] e = np.ascontiguousarray(end, np.uint64)
        cdef cnp.ndarray[cnp.uint32_t, ndim=1] i = np.ascontiguousarray(index, np.uint32)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] v = _opt_f32(value)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] w = _opt_f32(weight)
        cdef cnp.ndarray[cnp.uint32_t, ndim=1] x = _opt_u32(indexed)
        if s.shape[0] != e.shape[0]:
            raise DataError(f"dataset '{name}': start and end offsets differ in length")
        if v is not None and v.shape[0] != i.shape[0]:
            raise DataError(f"dataset '{name}': {v.shape[0]} values for {i.shape[0]} indices")
        _check_len(name, "weights", w, examples)
        _check_len(name, "index", x, examples)
        cdef uint64_t n = i.shape[0]
        cdef const uint64_t* sp = &s[0] if s.shape[0] else NULL
        cdef const uint64_t* ep = &e[0] if e.shape[0] else NULL
        cdef const uint32_t* ip = &i[0] if n else NULL
        cdef const float* vp = &v[0] if v is not None and n else NULL
        cdef const float* wp = &w[0] if w is not None else NULL
        cdef const uint32_t* xp = &x[0] if x is not None else NULL
        with nogil:
            ds.ptr = DataSet.sparse(ctx.ptr.get().backend, shape, sp, ep, ip, vp, n, wp, xp)
        ds.name = name
        return ds

    @staticmethod
    def dense(EngineContext ctx, str name, uint32_t attributes, tuple dims, uint32_t examples,
              cnp.ndarray data, object weight, object indexed):
        cdef EngineDataSet ds = EngineDataSet.__new__(EngineDataSet)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] d = np.ascontiguousarray(data, np.float32).reshape(-1)
        cdef uint32_t stride = dims[0] * dims[1] * dims[2]
        if stride == 0 or d.shape[0] % stride:
            raise DataError(f"dataset '{name}': {d.shape[0]} values do not fill rows of {stride}")
        cdef DataSetShape shape = _shape(name, attributes, dims, examples, d.shape[0] // stride)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] w = _opt_f32(weight)
        cdef cnp.ndarray[cnp.uint32_t, ndim=1] x = _opt_u32(indexed)
        _check_len(name, "weights", w, examples)
        _check_len(name, "index", x, examples)
        cdef const float* dp = &d[0] if d.shape[0] else NULL
        cdef const float* wp = &w[0] if w is not None else NULL
        cdef const uint32_t* xp = &x[0] if x is not None else NULL
        with nogil:
            ds.ptr = DataSet.dense(ctx.ptr.get().backend, shape, dp, wp, xp)
        ds.name = name
        return ds

    @property
    def examples(self):
        return self.ptr.get().examples()


cdef DataSetShape _shape(str name, uint32_t attributes, tuple dims, uint32_t examples, uint64_t unique):
    cdef DataSetShape shape
    shape.name = name.encode()
    shape.attributes = attributes
    shape.width = dims[0]
    shape.height = dims[1]
    shape.length = dims[2]
    shape.examples = examples
    shape.unique_examples = <uint32_t>unique
    return shape


cdef object _opt_f32(object a):
    return None if a is None else np.ascontiguousarray(a, np.float32).reshape(-1)


cdef object _opt_u32(object a):
    return None if a is None else np.ascontiguousarray(a, np.uint32).reshape(-1)


cdef _check_len(str name, str what, object a, uint32_t n):
    if a is not None and a.shape[0] != n:
        raise DataError(f"dataset '{name}': {a.shape[0]} {what} for {n} examples")


cdef class _CallbackState:
    cdef object fn
    cdef object error


cdef cbool _epoch_callback(void* ctx, const EpochReport& r) noexcept with gil:
    cdef _CallbackState state = <_CallbackState>ctx
    try:
        return bool(state.fn(r.epoch, r.error, r.regularization, r.seconds) is not False)
    except BaseException as exc:  # re-raised after the engine returns
        state.error = exc
        return False


cdef vector[shared_ptr[DataSet]] _dataset_vector(list datasets):
    cdef vector[shared_ptr[DataSet]] out
    cdef EngineDataSet ds
    for ds in datasets:
        out.push_back(ds.ptr)
    return out


cdef class EngineNetwork:
    """A network built from a spec dictionary (see dsstne.network) on one context."""

    cdef Network* ptr
    cdef EngineContext ctx

    def __cinit__(self, EngineContext ctx, dict spec, list datasets):
        cdef NetworkSpec s
        cdef LayerSpec ls
        cdef WeightSpec ws
        s.name = spec["name"].encode()
        s.error_function = spec["error_function"]
        smce = spec["smce"]
        s.smce_one_target = smce[0]
        s.smce_zero_target = smce[1]
        s.smce_one_scale = smce[2]
        s.smce_zero_scale = smce[3]
        s.delta_boost_one = spec["delta_boost"][0]
        s.delta_boost_zero = spec["delta_boost"][1]
        s.denoising_p = spec["denoising_p"]
        s.decay = spec["decay"]
        s.shuffle = spec["shuffle"]
        s.tanh_dropout_scale = spec.get("tanh_dropout_scale", True)
        s.bn_momentum = spec.get("bn_momentum", 1.0)
        s.batch = spec["batch"]
        for layer in spec["layers"]:
            ls = LayerSpec()
            ls.name = layer["name"].encode()
            ls.kind = layer["kind"]
            dims = layer["dims"]
            ls.nx = dims[0]
            ls.ny = dims[1]
            ls.nz = dims[2]
            ls.nw = dims[3]
            ls.sparse = layer["sparse"]
            ls.denoising = layer["denoising"]
            for src in layer["sources"]:
                ls.sources.push_back(src.encode())
            for src in layer.get("skips", ()):
                ls.skips.push_back(src.encode())
            ls.delta_norm = layer.get("delta_norm", 0.0)
            ls.dataset = layer["dataset"].encode()
            ls.activation = layer["activation"]
            act = layer["activation_params"]
            ls.relu_slope = act[0]
            ls.elu_alpha = act[1]
            ls.selu_lambda = act[2]
            ls.p_dropout = layer["p_dropout"]
            ls.sparseness_p = layer["sparseness"][0]
            ls.sparseness_beta = layer["sparseness"][1]
            ls.batch_norm = layer.get("batch_norm", False)
            s.layers.push_back(ls)
        for weight in spec["weights"]:
            ws = WeightSpec()
            ws.input = weight["input"].encode()
            ws.output = weight["output"].encode()
            ws.init = weight["init"]
            ws.init_scale = weight["scale"]
            ws.bias_init = weight["bias"]
            ws.norm = weight.get("norm", 0.0)
            ws.shared = weight.get("shared", False)
            ws.transposed = weight.get("transposed", False)
            ws.source_input = weight.get("source_input", "").encode()
            ws.source_output = weight.get("source_output", "").encode()
            s.weights.push_back(ws)
        self.ctx = ctx
        self.ptr = new Network(ctx.ptr, s, _dataset_vector(datasets))

    def __dealloc__(self):
        del self.ptr

    @property
    def epochs_done(self):
        return self.ptr.epochs_done()

    @property
    def batches_done(self):
        return self.ptr.batches_done()

    @property
    def optimizer_steps(self):
        return self.ptr.optimizer_steps()

    def set_counters(self, uint64_t epochs, uint64_t batches, uint64_t optimizer_steps):
        self.ptr.set_counters(epochs, batches, optimizer_steps)

    def get_state(self, str src, str dst, int which):
        cdef uint32_t n_in = self.ptr.layer_stride(src.encode())
        cdef uint32_t n_out = self.ptr.layer_stride(dst.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] w = np.empty((n_in, n_out), np.float32)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] b = np.empty(n_out, np.float32)
        self.ptr.get_state(src.encode(), dst.encode(), which, &w[0, 0], &b[0])
        return w, b

    def set_state(self, str src, str dst, int which, w, b):
        cdef uint32_t n_in = self.ptr.layer_stride(src.encode())
        cdef uint32_t n_out = self.ptr.layer_stride(dst.encode())
        w = np.ascontiguousarray(w, np.float32)
        b = np.ascontiguousarray(b, np.float32).reshape(-1)
        if w.size != n_in * n_out or b.shape[0] != n_out:
            raise DataError(f"optimiser state {src} -> {dst} must have shapes ({n_in}, {n_out}) and ({n_out},)")
        cdef cnp.ndarray[cnp.float32_t, ndim=2] wa = w.reshape(n_in, n_out)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] ba = b
        self.ptr.set_state(src.encode(), dst.encode(), which, &wa[0, 0], &ba[0])

    def train(self, uint32_t epochs, int mode, float alpha, float lambda_, float lambda1, float mu, float mu1,
              callback, bint clear_velocity=True, bint adam_dsstne_step=True, bint divergence_brake=False):
        """Train; callback(epoch, error, regularization, seconds) runs once per epoch, False stops."""
        cdef TrainParams p
        p.mode = mode
        p.alpha = alpha
        p.lambda_ = lambda_
        p.lambda1 = lambda1
        p.mu = mu
        p.mu1 = mu1
        p.clear_velocity = clear_velocity
        p.adam_dsstne_step = adam_dsstne_step
        p.divergence_brake = divergence_brake
        cdef _CallbackState state = _CallbackState()
        state.fn = callback if callback is not None else (lambda *a: True)
        cdef vector[EpochReport] reports
        with nogil:
            reports = self.ptr.train(epochs, p, _epoch_callback, <void*>state)
        if state.error is not None:
            raise state.error
        return [(r.epoch, r.error, r.regularization, r.seconds) for r in reports]

    def stride(self, str layer):
        return self.ptr.layer_stride(layer.encode())

    def predict(self, list inputs, str layer, uint32_t examples):
        cdef uint32_t stride = self.ptr.layer_stride(layer.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] out = np.empty((examples, stride), np.float32)
        cdef vector[shared_ptr[DataSet]] v = _dataset_vector(inputs)
        cdef string name = layer.encode()
        with nogil:
            self.ptr.predict(v, name, &out[0, 0])
        return out

    def recommend(self, list inputs, str layer, uint32_t k, uint32_t examples, EngineDataSet exclude=None):
        cdef cnp.ndarray[cnp.float32_t, ndim=2] scores = np.empty((examples, k), np.float32)
        cdef cnp.ndarray[cnp.uint32_t, ndim=2] index = np.empty((examples, k), np.uint32)
        cdef vector[shared_ptr[DataSet]] v = _dataset_vector(inputs)
        cdef shared_ptr[DataSet] ex
        if exclude is not None:
            ex = exclude.ptr
        cdef string name = layer.encode()
        with nogil:
            self.ptr.recommend(v, name, k, ex, &scores[0, 0], &index[0, 0])
        return index, scores

    def get_weights(self, str src, str dst):
        cdef uint32_t n_in = self.ptr.layer_stride(src.encode())
        cdef uint32_t n_out = self.ptr.layer_stride(dst.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] w = np.empty((n_in, n_out), np.float32)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] b = np.empty(n_out, np.float32)
        self.ptr.get_weights(src.encode(), dst.encode(), &w[0, 0], &b[0])
        return w, b

    def set_weights(self, str src, str dst, w, b):
        cdef uint32_t n_in = self.ptr.layer_stride(src.encode())
        cdef uint32_t n_out = self.ptr.layer_stride(dst.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] wa = np.ascontiguousarray(w, np.float32)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] ba = np.ascontiguousarray(b, np.float32).reshape(-1)
        if wa.shape[0] != n_in or wa.shape[1] != n_out:
            raise DataError(f"weights {src} -> {dst} must have shape ({n_in}, {n_out}), not {w.shape}")
        if ba.shape[0] != n_out:
            raise DataError(f"bias {src} -> {dst} must have {n_out} values, not {ba.shape[0]}")
        self.ptr.set_weights(src.encode(), dst.encode(), &wa[0, 0], &ba[0])

    def batch_gradients(self, uint32_t position):
        cdef double err
        with nogil:
            err = self.ptr.batch_gradients(position)
        return err

    def get_gradients(self, str src, str dst):
        cdef uint32_t n_in = self.ptr.layer_stride(src.encode())
        cdef uint32_t n_out = self.ptr.layer_stride(dst.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] w = np.empty((n_in, n_out), np.float32)
        cdef cnp.ndarray[cnp.float32_t, ndim=1] b = np.empty(n_out, np.float32)
        self.ptr.get_gradients(src.encode(), dst.encode(), &w[0, 0], &b[0])
        return w, b

    def clear_gradients(self):
        self.ptr.clear_gradients()

    def lock_weights(self, str src, str dst, bint locked):
        self.ptr.lock_weights(src.encode(), dst.encode(), locked)

    def weights_locked(self, str src, str dst):
        return self.ptr.weights_locked(src.encode(), dst.encode())

    def units(self, str layer):
        cdef cnp.ndarray[cnp.float32_t, ndim=2] out = np.empty(
            (self.ptr.batch(), self.ptr.layer_stride(layer.encode())), np.float32)
        self.ptr.get_units(layer.encode(), &out[0, 0])
        return out

    def deltas(self, str layer):
        cdef cnp.ndarray[cnp.float32_t, ndim=2] out = np.empty(
            (self.ptr.batch(), self.ptr.layer_stride(layer.encode())), np.float32)
        self.ptr.get_deltas(layer.encode(), &out[0, 0])
        return out

    def get_batch_norm(self, str layer):
        """(scale, bias, running mean, running variance) of a BatchNormalization layer, [stride] each."""
        cdef uint32_t n = self.ptr.layer_stride(layer.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] out = np.empty((4, n), np.float32)
        self.ptr.get_batch_norm(layer.encode(), &out[0, 0], &out[1, 0], &out[2, 0], &out[3, 0])
        return out[0], out[1], out[2], out[3]

    def set_batch_norm(self, str layer, scale, bias, mean, variance):
        cdef uint32_t n = self.ptr.layer_stride(layer.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] a = _stack_units(layer, n, (scale, bias, mean, variance))
        self.ptr.set_batch_norm(layer.encode(), &a[0, 0], &a[1, 0], &a[2, 0], &a[3, 0])

    def get_batch_norm_gradients(self, str layer):
        cdef uint32_t n = self.ptr.layer_stride(layer.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] out = np.empty((2, n), np.float32)
        self.ptr.get_batch_norm_gradients(layer.encode(), &out[0, 0], &out[1, 0])
        return out[0], out[1]

    def get_batch_norm_state(self, str layer, int which):
        cdef uint32_t n = self.ptr.layer_stride(layer.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] out = np.empty((2, n), np.float32)
        self.ptr.get_batch_norm_state(layer.encode(), which, &out[0, 0], &out[1, 0])
        return out[0], out[1]

    def set_batch_norm_state(self, str layer, int which, scale, bias):
        cdef uint32_t n = self.ptr.layer_stride(layer.encode())
        cdef cnp.ndarray[cnp.float32_t, ndim=2] a = _stack_units(layer, n, (scale, bias))
        self.ptr.set_batch_norm_state(layer.encode(), which, &a[0, 0], &a[1, 0])


cdef cnp.ndarray _stack_units(str layer, uint32_t n, tuple arrays):
    """Per-unit arrays of a layer as one contiguous float32 [len(arrays), n] block, lengths checked."""
    rows = [np.ascontiguousarray(a, np.float32).reshape(-1) for a in arrays]
    for r in rows:
        if r.shape[0] != n:
            raise DataError(f"batch-norm arrays of layer '{layer}' must have {n} values, not {r.shape[0]}")
    return np.ascontiguousarray(np.stack(rows))
