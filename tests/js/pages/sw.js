// A module service worker with the package loaded as self.annal.
import * as annal from "/annal/dist/index.js";
self.annal = annal;
self.annalReady = true;
self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
