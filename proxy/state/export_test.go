package state

// UploadsBucket lets the external tests plant raw values in the bbolt file.
var UploadsBucket = uploadsBucket
