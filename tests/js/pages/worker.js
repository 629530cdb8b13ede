// A module worker with the package loaded as self.annal, for evaluate().
import * as annal from "/annal/dist/index.js";
self.annal = annal;
self.annalReady = true;
postMessage("ready");
