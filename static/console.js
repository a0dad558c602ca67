// Latchkey console: "Copy" buttons (progressive enhancement; the value is on the page anyway).
(function () {
  'use strict';
  for (const b of document.querySelectorAll('button.copy[data-copy]')) {
    b.addEventListener('click', async () => {
      const el = document.getElementById(b.dataset.copy);
      if (!el || !navigator.clipboard) return;
      try {
        await navigator.clipboard.writeText(el.textContent.trim());
        b.textContent = 'Copied';
      } catch (e) {
        b.textContent = 'Select and copy';
      }
    });
  }
})();
