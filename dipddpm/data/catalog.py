"""The benchmark images a protocol names, by name: where each comes from publicly, and its pins.

A spec names an image as `data:SET/IMAGE` (one image, e.g. `data:cset9/F16`) and a study as
`data:SET` (every image of the set); `dipddpm data fetch SET` puts them in the data cache
(`fetch.py`), checked against the SHA-256 pinned here. Sets:

  cset9      the 9 colour images (512x512 RGB) behind the denoising table of Ulyanov, Vedaldi
             and Lempitsky, "Deep Image Prior", CVPR 2018 (sigma = 25): Baboon, F16, House,
             Lena, Peppers and Kodak 1, 2, 3, 12. Served as uint8 arrays (.npz) by the
             MIT-licensed repository of Wang et al., "Early Stopping for Deep Image Prior"
             (TMLR 2023), github.com/sun-umn/Early_Stopping_for_DIP; written to the cache as
             lossless PNGs. Classic test images, for research use.
  f16        cset9's F16 alone (the staged-DIP protocols' image), in cset9's cache folder.
  butterfly  Image_1.jpg (224x224 RGB), the image of the guided-DIP source's table, as kept by
             github.com/larrychen20011120/Guided-DIP (MIT) from a public butterfly
             classification set on Kaggle; research use.

Pins: `sha256` is of the bytes the source serves (the .npz, the .jpg); `pixels` is of the
decoded uint8 image (its shape, then its bytes: `pixel_digest`), which a lossless PNG keeps
whatever encoder wrote it, so a mirror may hold either the served file or that PNG. Both were
checked against an independent copy of the same images: the arrays are equal pixel for pixel,
the JPEG byte for byte. URLs name a commit, so what they serve cannot change under the pin.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dipddpm.registry import Registry

ES_DIP = ("https://raw.githubusercontent.com/sun-umn/Early_Stopping_for_DIP/"
          "877d994df50fe35415a225d1bcd4123006f7aa4f/Dataset/Gaussian_Noise/Clean/")
GUIDED_DIP = ("https://raw.githubusercontent.com/larrychen20011120/Guided-DIP/"
              "47143e63855c485cbd5c8c985e82c50681364bd5/data/test/")


@dataclass(frozen=True)
class DataImage:
    """One image: its name in specs, its cache file, where it is served and how to check it."""

    name: str  # data:SET/NAME
    file: str  # its file in the set's cache folder
    url: str  # the public source (a commit's raw file)
    sha256: str  # of the served bytes
    served: Literal["npz", "file"]  # an .npz array (written as PNG) or the file itself
    pixels: str | None = None  # pixel_digest of the decoded image (lossless formats only)

    @property
    def served_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class DataSet:
    folder: str  # the cache (and mirror) folder its files live in
    images: tuple[DataImage, ...]
    help: str
    source: str  # where it comes from, in words

    def image(self, name: str) -> DataImage | None:
        return next((i for i in self.images if i.name == name), None)


def pixel_digest(arr: np.ndarray) -> str:
    """SHA-256 of a uint8 image: its shape, then its pixels in C order."""
    arr = np.ascontiguousarray(arr)
    head = "x".join(str(n) for n in arr.shape).encode() + b":" + str(arr.dtype).encode() + b":"
    return hashlib.sha256(head + arr.tobytes()).hexdigest()


def _cset9(name: str, sha256: str, pixels: str) -> DataImage:
    return DataImage(name, f"{name}.png", f"{ES_DIP}{name}_clean.npz", sha256, "npz", pixels)


CSET9 = (
    _cset9("Baboon", "190b93521874e6bdfef455e6d962e906969d6b10065776274d5f4e84ed772197",
           "23c4368c373ad13e9698654c3209d3d5b52c773f86fa59509e194436bb26c831"),
    _cset9("F16", "5ec037f36d61ed4a1228727a94e147779fdc1adec616553e40881b2ae48f7c1f",
           "eb2b755e5a6963de6e5f47484b4492075c234b6de3a7a0b19c8d81e0eb4047a2"),
    _cset9("House", "ddfc8ab7efce960f57e72b20c6969d309f9292590dfc4993671fe733feaecbe9",
           "3d33ea668374b54b03c23508fa7676cf51f3e130f1d612b60512eab060f3e221"),
    _cset9("Lena", "e9ea938f9fb44216111f966d574d56097227ef913d277a670b646ba91aa6cd6f",
           "9d571f66a8968910c2b142f06c2e01a9673cbfcb69e1069a3bccff5d3018a293"),
    _cset9("Peppers", "dae31b3f5162141763e8baae1c8bff2e8808f3af54c31257f0d2df5a41be2c99",
           "0fbff428597062df1aea3212525e16c741bb14f9abfe6f924c92949e8df276c4"),
    _cset9("kodim01", "a432f25187543ea34accca6e9c1952d81bbc37e48a712b46e5c90dc1852ec057",
           "71561daaa89aee17d57470d205fea5e4c96678f248573b228dc7bef9e18731e6"),
    _cset9("kodim02", "a246c4175816b5f4e68dd7ef3bd3a8a647546645c0df1e83d1b69c5461d297ed",
           "4160242b0b1bf4016aea5023d67fa602e02eb126214068991f03f0089c900d3f"),
    _cset9("kodim03", "32adb58491f6cec3cd4d415ee6e6ba11e0df982fface46fe01c7ad082fbcef03",
           "7f9079a05d5b228eb526f2f9a4bd4c1fe833dc8fd6ba94ebe3ec28e53ff492f1"),
    _cset9("kodim12", "6c1bc1ae652ec7d4ad123fcc951acfcc3579c362c4f620cbfa44312977301089",
           "51157041f5c6ade4e9e7816783ca8c8e7e3236821109d41e13f3d58d4cc4a0ff"),
)
BUTTERFLY = DataImage("Image_1", "Image_1.jpg", f"{GUIDED_DIP}Image_1.jpg",
                      "3a428ced0c794972835dfa136c7a577174ecb9ed6ea9c9f4d8efb632c70ac21c", "file")
ES_DIP_SOURCE = ("Wang et al., Early Stopping for Deep Image Prior (TMLR 2023), "
                 "github.com/sun-umn/Early_Stopping_for_DIP (MIT); classic test images")

DATA: Registry[DataSet] = Registry("data set")
DATA.register("cset9")(DataSet(
    "cset9", CSET9, "the 9 colour images of Deep Image Prior's denoising table (512x512)",
    ES_DIP_SOURCE))
DATA.register("f16")(DataSet(
    "cset9", tuple(i for i in CSET9 if i.name == "F16"), "CSet9's F16 alone (512x512)",
    ES_DIP_SOURCE))
DATA.register("butterfly")(DataSet(
    "butterfly", (BUTTERFLY,), "the guided-DIP source's butterfly, Image_1 (224x224)",
    "github.com/larrychen20011120/Guided-DIP (MIT), from a Kaggle butterfly set"))


def smallest_set_with(folder: str, image: str) -> str:
    """The name of the registered set with the fewest images that holds `image` of `folder`
    (what `data fetch` needs for it)."""
    holders = [(len(s.images), n) for n, s in DATA.items()
               if s.folder == folder and s.image(image) is not None]
    return min(holders)[1]
