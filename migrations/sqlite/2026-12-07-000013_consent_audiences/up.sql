-- The audiences (resource servers) a consent covers, space-separated: consent for one API is
-- not consent for another (issue 18 finding 2). Consents from before cover none: asked once again.
ALTER TABLE consents ADD COLUMN audience TEXT NOT NULL DEFAULT '';
