// Turns the engine's C++ exceptions into dsstne's Python exceptions (used as `except +translate_error`).
#pragma once

#include <Python.h>

#include <exception>
#include <new>
#include <stdexcept>

#include "dsstne/errors.h"

// Set once by the module: DataError, NotSupportedError, DeviceError.
static PyObject* dsstne_data_error = nullptr;
static PyObject* dsstne_not_supported_error = nullptr;
static PyObject* dsstne_device_error = nullptr;

static inline void dsstne_set_error_types(PyObject* data, PyObject* not_supported, PyObject* device) {
  dsstne_data_error = data;
  dsstne_not_supported_error = not_supported;
  dsstne_device_error = device;
}

static inline void dsstne_translate_error() {
  try {
    throw;
  } catch (const dsstne::InputError& e) {
    PyErr_SetString(dsstne_data_error, e.what());
  } catch (const dsstne::NotSupported& e) {
    PyErr_SetString(dsstne_not_supported_error, e.what());
  } catch (const dsstne::Error& e) {
    PyErr_SetString(dsstne_device_error, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_SetString(PyExc_MemoryError, "out of host memory");
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception in the dsstne engine");
  }
}
