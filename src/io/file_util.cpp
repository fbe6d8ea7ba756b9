#include "io/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"

namespace nemotron::io {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_dir(const std::string& path) {
  std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Six random characters for temporary names; unique across threads and processes with high
// probability, and the O_EXCL / mkdir creation retries on the rare collision.
std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t seed = std::random_device{}();
  std::mt19937_64 rng(seed ^ (static_cast<uint64_t>(getpid()) << 32) ^ counter.fetch_add(1));
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(6, ' ');
  for (char& c : s) c = kChars[rng() % (sizeof(kChars) - 1)];
  return s;
}

void write_all_at(int fd, const std::string& path, uint64_t offset, const void* data, size_t nbytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (nbytes > 0) {
    ssize_t n = ::pwrite(fd, p, nbytes, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write to {}: {} (is the disk full?)", path, errno_text());
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    nbytes -= static_cast<size_t>(n);
  }
}

void fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) fail("cannot open {} to flush it to disk: {}", path, errno_text());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  // Some file systems (e.g. certain network mounts) do not support fsync on directories.
  if (rc != 0 && !(directory && (err == EINVAL || err == ENOTSUP)))
    fail("cannot flush {} to disk: {}", path, std::strerror(err));
}

bool directory_is_empty(const std::string& path) {
  std::error_code ec;
  return fs::is_empty(path, ec) && !ec;
}

}  // namespace

// ---------------------------------------------------------------- MappedFile

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail("cannot stat {}: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{} is not a regular file", path);
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    // Private + writable: in-place edits of a loaded tensor stay in memory. MAP_NORESERVE because
    // such edits are rare and a multi-GB shard should not be charged against the commit limit.
    void* p = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail("cannot memory-map {} ({} bytes): {}", path, m->size_, std::strerror(err));
    }
    m->data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

// ---------------------------------------------------------------- small helpers

std::string read_file_range(const std::string& path, uint64_t offset, size_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open {}: {}", path, errno_text());
  std::string out(length, '\0');
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      fail("cannot read {}: {}", path, std::strerror(err));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

std::string read_file(const std::string& path) {
  if (is_directory(path)) fail("cannot read {}: it is a directory", path);
  return read_file_range(path, 0, static_cast<size_t>(file_size(path)));
}

uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("cannot stat {}: {}", path, errno_text());
  return static_cast<uint64_t>(st.st_size);
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string join_path(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out(dir);
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

void fsync_directory(const std::string& dir) { fsync_path(dir, true); }

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.append(contents);
  f.commit();
}

// ---------------------------------------------------------------- AtomicFile

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp_path_ = path_ + ".tmp-" + random_suffix();
    // 0666 & ~umask: the final file gets the usual permissions (mkstemp would give 0600).
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  fail("cannot create {} (temporary file for {}): {} (does the directory exist and is it writable?)", temp_path_,
       path_, errno_text());
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFile::append(const void* data, size_t nbytes) {
  write_at(append_offset_, data, nbytes);
  append_offset_ += nbytes;
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t nbytes) {
  NT_CHECK(fd_ >= 0 && !committed_, "internal: write to {} after commit", path_);
  write_all_at(fd_, temp_path_, offset, data, nbytes);
}

void AtomicFile::commit() {
  NT_CHECK(fd_ >= 0 && !committed_, "internal: {} committed twice", path_);
  if (::fsync(fd_) != 0) fail("cannot flush {} to disk: {}", temp_path_, errno_text());
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail("cannot close {}: {}", temp_path_, errno_text());
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0)
    fail("cannot rename {} to {}: {}", temp_path_, path_, errno_text());
  committed_ = true;
  fsync_directory(parent_dir(path_));
}

// ---------------------------------------------------------------- AtomicDirectory

AtomicDirectory::AtomicDirectory(std::string path, bool replace_existing)
    : path_(std::move(path)), replace_existing_(replace_existing) {
  while (path_.size() > 1 && path_.back() == '/') path_.pop_back();
  NT_CHECK(!path_.empty(), "output directory path is empty");
  if (path_exists(path_)) {
    NT_CHECK(is_directory(path_), "{} exists and is not a directory; choose another output path", path_);
    NT_CHECK(replace_existing_ || directory_is_empty(path_),
             "{} already exists and is not empty; remove it or choose another output directory", path_);
  }
  std::error_code ec;
  fs::create_directories(parent_dir(path_), ec);
  if (ec) fail("cannot create the parent directory of {}: {}", path_, ec.message());
  for (int attempt = 0; attempt < 100; ++attempt) {
    staging_path_ = path_ + ".tmp-" + random_suffix();
    if (::mkdir(staging_path_.c_str(), 0777) == 0) return;
    if (errno != EEXIST) break;
  }
  fail("cannot create the staging directory {}: {}", staging_path_, errno_text());
}

AtomicDirectory::~AtomicDirectory() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_path_, ec);  // best effort; never throws from a destructor
}

void AtomicDirectory::commit() {
  NT_CHECK(!committed_, "internal: {} committed twice", path_);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(staging_path_, ec); !ec && it != fs::end(it); it.increment(ec)) {
    if (it->is_regular_file()) fsync_path(it->path().string(), false);
    else if (it->is_directory()) fsync_path(it->path().string(), true);
  }
  if (ec) fail("cannot list {}: {}", staging_path_, ec.message());
  fsync_directory(staging_path_);

  bool exists = path_exists(path_);
  if (exists && !directory_is_empty(path_)) {
    NT_CHECK(replace_existing_, "{} was created by someone else while this run wrote {}; nothing was replaced",
             path_, staging_path_);
    // Swap both names in one step; afterwards the staging name holds the old contents.
    if (::renameat2(AT_FDCWD, staging_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) == 0) {
      committed_ = true;
      fs::remove_all(staging_path_, ec);
      fsync_directory(parent_dir(path_));
      return;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      fail("cannot replace {} with {}: {}", path_, staging_path_, errno_text());
    // No atomic exchange on this file system: move the old directory aside first.
    std::string aside = path_ + ".old-" + random_suffix();
    if (::rename(path_.c_str(), aside.c_str()) != 0)
      fail("cannot move {} aside to {}: {}", path_, aside, errno_text());
    if (::rename(staging_path_.c_str(), path_.c_str()) != 0)
      fail("cannot rename {} to {}: {} (the previous contents are in {})", staging_path_, path_, errno_text(), aside);
    committed_ = true;
    fs::remove_all(aside, ec);
  } else {
    // rename() atomically replaces an empty directory.
    if (::rename(staging_path_.c_str(), path_.c_str()) != 0)
      fail("cannot rename {} to {}: {}", staging_path_, path_, errno_text());
    committed_ = true;
  }
  fsync_directory(parent_dir(path_));
}

}  // namespace nemotron::io
