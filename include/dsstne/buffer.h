// Buffer<T>: DSSTNE's GpuBuffer kept. A move-only owner of a target allocation with an optional host
// mirror and explicit upload/download/copy/resize; memory is accounted by the backend. On the CPU target
// the "device" allocation is ordinary memory, but the same calls are made.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "dsstne/backend.h"
#include "dsstne/errors.h"

namespace dsstne {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(std::shared_ptr<Backend> backend, size_t length, bool host_mirror = false)
      : backend_(std::move(backend)) {
    allocate(length);
    if (host_mirror) host_.assign(length, T{});
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      swap(o);
    }
    return *this;
  }
  ~Buffer() { reset(); }

  size_t size() const { return length_; }
  size_t bytes() const { return length_ * sizeof(T); }
  bool empty() const { return length_ == 0; }
  T* device() { return device_; }  // nullptr when empty
  const T* device() const { return device_; }
  T* host() { return host_.data(); }
  const T* host() const { return host_.data(); }

  // Host -> target, from src or the mirror.
  void upload(const T* src = nullptr) {
    if (length_) backend_->to_device(device_, src ? src : mirror(), bytes());
  }
  // Target -> host, into dst or the mirror.
  void download(T* dst = nullptr) {
    if (length_) backend_->to_host(dst ? dst : mirror(), device_, bytes());
  }
  // `count` host rows of `width` to and from the first `count` rows of a target layout whose rows are
  // `pitch` apart (the padding between them uploaded as zeros). An empty buffer moves nothing.
  void upload_rows(const T* src, size_t count, size_t width, size_t pitch) {
    if (!rows_fit(count, width, pitch)) return;
    if (pitch == width) return backend_->to_device(device_, src, count * width * sizeof(T));
    std::vector<T> padded(count * pitch, T{});
    for (size_t r = 0; r < count; ++r) std::copy_n(src + r * width, width, padded.data() + r * pitch);
    backend_->to_device(device_, padded.data(), padded.size() * sizeof(T));
  }
  void download_rows(T* dst, size_t count, size_t width, size_t pitch) {
    if (!rows_fit(count, width, pitch)) return;
    if (pitch == width) return backend_->to_host(dst, device_, count * width * sizeof(T));
    std::vector<T> padded(count * pitch);
    backend_->to_host(padded.data(), device_, padded.size() * sizeof(T));
    for (size_t r = 0; r < count; ++r) std::copy_n(padded.data() + r * pitch, width, dst + r * width);
  }
  // Target -> target, the whole length of the smaller buffer.
  void copy_from(const Buffer& other) {
    backend_->copy(device_, other.device_, std::min(bytes(), other.bytes()));
  }
  void zero() {
    if (length_) backend_->zero(device_, bytes());
  }
  // Grows only; contents are lost when it grows (as GpuBuffer::Resize).
  void resize(size_t length) {
    if (length <= length_) return;
    const bool mirrored = !host_.empty();
    reset_device();
    allocate(length);
    if (mirrored) host_.assign(length, T{});
  }

 private:
  // Whether rows are to be moved: none for an empty buffer; an error past its end.
  bool rows_fit(size_t count, size_t width, size_t pitch) const {
    if (!length_) return false;
    DSSTNE_REQUIRE(width <= pitch && count * pitch <= length_, count, " rows of ", pitch,
                   " do not fit a buffer of ", length_);
    return true;
  }
  T* mirror() {
    if (host_.size() != length_) host_.assign(length_, T{});
    return host_.data();
  }
  void allocate(size_t length) {
    length_ = length;
    device_ = length ? static_cast<T*>(backend_->allocate(length * sizeof(T))) : nullptr;
  }
  void reset_device() {
    if (device_) backend_->release(device_, bytes());
    device_ = nullptr;
    length_ = 0;
  }
  void reset() {
    reset_device();
    host_.clear();
    host_.shrink_to_fit();
    backend_.reset();
  }
  void swap(Buffer& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(device_, o.device_);
    std::swap(length_, o.length_);
    std::swap(host_, o.host_);
  }

  std::shared_ptr<Backend> backend_;
  T* device_ = nullptr;
  size_t length_ = 0;
  std::vector<T> host_;
};

}  // namespace dsstne
