// Wan2.1's VAE decode on CPU at video sizes, with its memory: the decoder runs one latent frame
// per chunk with per-conv feature caches (models/vae/autoencoder_kl_wan.h), so its working
// memory should not grow with the video's length. Decodes T = 1, 2, 3 ... latent frames
// (1, 5, 9 ... video frames) and prints the time and the allocator peak beyond the output video.
//
// Make the folder with diffusers (the default AutoencoderKLWan config is Wan 2.1's VAE):
//   python -c "from diffusers import AutoencoderKLWan as A; A().save_pretrained('DIR/vae')"
// Usage: bench_wan_vae DIR/vae [--size 832x480] [--latent-frames 1,2,3]
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "mindiesd/core/allocator.h"
#include "mindiesd/core/ops.h"
#include "mindiesd/io/diffusers.h"
#include "mindiesd/models/vae/autoencoder_kl_wan.h"

int main(int argc, char** argv) {
  using namespace mindiesd;
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_wan_vae VAE_DIR [--size 832x480] [--latent-frames 1,2,3]\n");
    return 2;
  }
  int64_t width = 832, height = 480;
  std::vector<int64_t> latent_frames{1, 2, 3};
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--size") {
      width = std::stoll(v.substr(0, v.find('x')));
      height = std::stoll(v.substr(v.find('x') + 1));
    } else if (a == "--latent-frames") {
      latent_frames.clear();
      std::stringstream ss(v);
      for (std::string t; std::getline(ss, t, ',');) latent_frames.push_back(std::stoll(t));
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const io::DiffusersFolder folder = io::DiffusersFolder::open(argv[1]);
  const models::AutoencoderKLWan vae =
      models::AutoencoderKLWan::load(folder.components().front(), DType::f32);
  const int64_t s = vae.spatial_scale();
  std::printf("AutoencoderKLWan decode, f32, %lldx%lld, base_dim %lld, z_dim %lld\n",
              static_cast<long long>(width), static_cast<long long>(height),
              static_cast<long long>(vae.config().decoder_base_dim),
              static_cast<long long>(vae.config().z_dim));
  std::printf(
      "latent frames  video frames  seconds  s/video frame  peak GiB  output GiB  peak - "
      "output GiB\n");
  for (int64_t t : latent_frames) {
    const Tensor z = ops::randn({1, vae.config().z_dim, t, height / s, width / s}, 7);
    cpu_allocator().reset_peak();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor video = vae.decode(z);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double peak =
        static_cast<double>(cpu_allocator().stats().peak_allocated_bytes - before) / (1 << 30);
    const double out = static_cast<double>(video.numel() * 4) / (1 << 30);
    std::printf("%13lld  %12lld  %7.1f  %13.2f  %8.2f  %10.2f  %17.2f\n", static_cast<long long>(t),
                static_cast<long long>(video.size(2)), secs,
                secs / static_cast<double>(video.size(2)), peak, out, peak - out);
    std::fflush(stdout);
  }
  return 0;
}
