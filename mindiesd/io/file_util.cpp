#include "mindiesd/io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "mindiesd/core/error.h"

namespace mindiesd::io {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Opens `path` read-only and checks that it is a regular file; returns the fd and its size.
int open_regular(const std::filesystem::path& path, size_t* size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    MINDIESD_CHECK(err != ENOENT && err != ENOTDIR, NotFound, path.string(), ": no such file");
    MINDIESD_THROW(Io, path.string(), ": cannot open: ", errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    MINDIESD_THROW(Io, path.string(), ": cannot stat: ", errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    MINDIESD_THROW(
        InvalidArgument, path.string(),
        S_ISDIR(st.st_mode) ? ": is a directory, not a file" : ": is not a regular file");
  }
  *size = static_cast<size_t>(st.st_size);
  return fd;
}

}  // namespace

std::string read_file(const std::filesystem::path& path, int64_t max_bytes, const char* what) {
  size_t size = 0;
  const int fd = open_regular(path, &size);
  if (static_cast<uint64_t>(size) > static_cast<uint64_t>(max_bytes)) {
    ::close(fd);
    MINDIESD_THROW(InvalidArgument, path.string(), ": ", size, " bytes, more than the ", max_bytes,
                   " allowed for ", what);
  }
  std::string data(size, '\0');
  size_t done = 0;
  while (done < size) {
    const ssize_t r = ::read(fd, data.data() + done, size - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      const int err = errno;
      ::close(fd);
      MINDIESD_CHECK(r != 0, Io, path.string(), ": file shrank while being read");
      MINDIESD_THROW(Io, path.string(), ": read failed: ", errno_text(err));
    }
    done += static_cast<size_t>(r);
  }
  ::close(fd);
  return data;
}

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  size_t size = 0;
  const int fd = open_regular(path, &size);
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size;
  if (size > 0) {
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps its own reference to the file
    MINDIESD_CHECK(addr != MAP_FAILED, Io, path.string(), ": cannot map ", size,
                   " bytes: ", errno_text(err));
    m->addr_ = addr;
  } else {
    ::close(fd);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

void FileSink::write(const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t w = ::write(fd_, p, bytes);
    if (w < 0 && errno == EINTR) continue;
    MINDIESD_CHECK(w > 0, Io, target_->string(), ": write failed after ", written_,
                   " bytes: ", errno_text(errno));
    p += w;
    bytes -= static_cast<size_t>(w);
    written_ += w;
  }
}

void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(FileSink&)>& fill) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  const std::filesystem::path tmp =
      dir / str_cat(".", path.filename().string(), ".tmp.", ::getpid(), ".", counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    MINDIESD_CHECK(err != ENOENT, NotFound, path.string(), ": directory ", dir.string(),
                   " does not exist");
    MINDIESD_THROW(Io, path.string(), ": cannot create ", tmp.string(), ": ", errno_text(err));
  }
  int open_fd = fd;
  try {
    FileSink sink(fd, &path);
    fill(sink);
    MINDIESD_CHECK(::fsync(fd) == 0, Io, path.string(), ": fsync failed: ", errno_text(errno));
    const int rc = ::close(fd);
    open_fd = -1;  // closed even when close() reports an error
    MINDIESD_CHECK(rc == 0, Io, path.string(), ": close failed: ", errno_text(errno));
  } catch (...) {
    if (open_fd >= 0) ::close(open_fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    MINDIESD_THROW(Io, path.string(), ": cannot replace with ", tmp.string(), ": ",
                   errno_text(err));
  }
}

}  // namespace mindiesd::io
